package main

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/imagemod"
	"github.com/ferry-dev/ferry/location"
	"github.com/ferry-dev/ferry/opener"
	"github.com/ferry-dev/ferry/platform"
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/ocilayout"
)

// The image mode:
//
//	go run ./release image --dist DIR (--oci LAYOUT | --push REF) [--ca-certs FILE]
//
// builds ferry's container image from the linux/amd64 and linux/arm64
// archives of a release directory (what the release run wrote; their
// SHA256SUMS lines are checked first), with ferry's own library code: per
// platform, imagemod.Append on scratch of one layer — /ferry from the
// archive, the build host's CA bundle at /etc/ssl/certs/ca-certificates.crt
// and an empty /tmp (1777), written by writeTarGz like the archives, so
// sorted, owned by 0:0, every mtime the commit's — with entrypoint
// ["/ferry"], the OCI labels, and the commit's time as created; then
// imagemod.IndexCreate of the two under an OCI index carrying the labels
// as annotations, which, once the platform manifests are written and
// before it tags the index, calls imagemod.Attach of each platform's
// CycloneDX SBOM (the release's file, byte for byte) as a referrer of
// that platform's manifest: the tag is never live without the SBOMs.
//
// The SBOMs are attached to the platform manifests, not to the index:
// each describes one binary (its purl names goos and goarch), so it
// belongs to the image holding that binary, and a scanner that picks a
// platform looks for the referrers of that platform's manifest digest.
// An SBOM lists the binary's modules, not the CA bundle beside it. In an
// OCI layout the store lists the SBOM manifests untagged in index.json,
// beside the tagged index (ocilayout's AddReferrer).
//
// Nothing depends on when or where it runs but the CA bundle: the same
// release directory and bundle give the same index digest.

// imageTargets are the image's platforms.
var imageTargets = []string{"linux/amd64", "linux/arm64"}

// sbomArtifactType is the CycloneDX JSON media type, the SBOM referrers'
// artifactType.
const sbomArtifactType = "application/vnd.cyclonedx+json"

// imageOptions are the image mode's settings.
type imageOptions struct {
	dist    string // the release directory
	oci     string // an OCI layout directory to write into, or ""
	push    string // a registry reference to push to, or ""
	caCerts string // the CA bundle to install
}

// builtImage reports an image written.
type builtImage struct {
	ref       string          // where, as a ferry location
	index     v1.Descriptor   // the index
	platforms []v1.Descriptor // its entries
	sboms     []v1.Descriptor // the SBOM referrers, one per entry
	labels    map[string]string
}

// release files of one platform, from the release directory.
type platformFiles struct {
	target  string // os/arch
	archive string
	sbom    string
}

// buildImage builds the image o describes from o.dist.
func buildImage(ctx context.Context, o imageOptions) (*builtImage, error) {
	if (o.oci == "") == (o.push == "") {
		return nil, errors.New("image: give one of --oci DIR and --push REF")
	}
	files, err := releaseFiles(o.dist)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "ferry-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	stage := filepath.Join(tmp, "oci")
	var entries []imagemod.IndexEntry
	var stamp *buildStamp
	for _, f := range files {
		layer, s, err := imageLayer(f, filepath.Join(tmp, strings.ReplaceAll(f.target, "/", "_")), o.caCerts)
		if err != nil {
			return nil, err
		}
		if stamp != nil && *s != *stamp {
			return nil, fmt.Errorf("%s: built from %s at %s, the other platform from %s at %s", f.archive, s.revision, s.version, stamp.revision, stamp.version)
		}
		stamp = s
		spec, err := platform.ParseSpec(f.target)
		if err != nil {
			return nil, err
		}
		tag := strings.ReplaceAll(f.target, "/", "-")
		staged := ocilayout.Open(stage, tag, "")
		_, err = imagemod.Append(ctx, nil, staged, []imagemod.Layer{{Path: layer}},
			imagemod.WithPlatform(spec), imagemod.WithEntrypoint("/ferry"), imagemod.WithCreated(stamp.time),
			imagemod.WithLabels(stamp.labels()), imagemod.WithAnnotations(stamp.labels()), imagemod.WithTempDir(tmp))
		staged.Close()
		if err != nil {
			return nil, fmt.Errorf("image for %s: %w", f.target, err)
		}
		// Layouts hold nothing open: the staging directory goes with tmp.
		entries = append(entries, imagemod.IndexEntry{Source: ocilayout.Open(stage, tag, "")})
	}

	out := &builtImage{labels: stamp.labels()}
	var dst store.Target
	if o.oci != "" {
		out.ref = "oci:" + o.oci + ":" + stamp.tag()
		dst = ocilayout.Open(o.oci, stamp.tag(), "")
	} else {
		loc, err := location.Parse(o.push)
		if err != nil {
			return nil, fmt.Errorf("--push: %w", err)
		}
		if loc.Kind != location.Registry {
			return nil, fmt.Errorf("--push %s: not a registry reference (write an OCI layout with --oci)", o.push)
		}
		out.ref = o.push
		if dst, err = opener.New(opener.DefaultNetwork()).Target(ctx, loc, nil); err != nil {
			return nil, err
		}
	}
	defer dst.Close()
	// The SBOMs are attached once the platform manifests are written and
	// before the index is tagged: a failed attach leaves no tag, never
	// one without its SBOMs.
	attach := func(ctx context.Context, res *imagemod.IndexResult) (err error) {
		out.sboms, err = attachSBOMs(ctx, dst, files, res.Entries, stamp.time)
		return err
	}
	res, err := imagemod.IndexCreate(ctx, dst, entries, nil, imagemod.WithAnnotations(stamp.labels()), imagemod.WithBeforeTag(attach))
	if err != nil {
		return nil, fmt.Errorf("index at %s: %w", out.ref, err)
	}
	out.index, out.platforms = res.Written, res.Entries
	return out, dst.Close()
}

// attachSBOMs attaches files[i].sbom to dst as a referrer of entries[i],
// annotated with created, and returns the SBOM manifests. dst records
// each as a referrer of its platform manifest (imagemod.Attach): an OCI
// layout lists it, untagged, in index.json. When an attach fails, closing
// a layout the build created removes what it wrote, those entries
// included, since no tag came of it.
func attachSBOMs(ctx context.Context, dst store.Target, files []platformFiles, entries []v1.Descriptor, created time.Time) ([]v1.Descriptor, error) {
	ann := imagemod.WithAnnotations(map[string]string{"org.opencontainers.image.created": created.Format(time.RFC3339)})
	var sboms []v1.Descriptor
	for i, e := range entries {
		d, err := imagemod.Attach(ctx, dst, e, sbomArtifactType, files[i].sbom, ann)
		if err != nil {
			return nil, err
		}
		sboms = append(sboms, d)
	}
	return sboms, nil
}

// releaseFiles finds the image platforms' archives and SBOMs in dist and
// checks them against its SHA256SUMS.
func releaseFiles(dist string) ([]platformFiles, error) {
	sums, err := readSums(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		return nil, err
	}
	var out []platformFiles
	for _, t := range imageTargets {
		goos, goarch, _ := strings.Cut(t, "/")
		matches, err := filepath.Glob(filepath.Join(dist, "ferry_*_"+goos+"_"+goarch+".tar.gz"))
		if err != nil {
			return nil, err
		}
		if len(matches) != 1 {
			return nil, fmt.Errorf("%s: want one %s archive (ferry_VERSION_%s_%s.tar.gz), found %d", dist, t, goos, goarch, len(matches))
		}
		f := platformFiles{target: t, archive: matches[0], sbom: strings.TrimSuffix(matches[0], ".tar.gz") + ".sbom.cdx.json"}
		for _, p := range []string{f.archive, f.sbom} {
			want, ok := sums[filepath.Base(p)]
			if !ok {
				return nil, fmt.Errorf("%s is not listed in %s", p, filepath.Join(dist, "SHA256SUMS"))
			}
			got, err := fileSHA256(p)
			if err != nil {
				return nil, err
			}
			if got != want {
				return nil, fmt.Errorf("%s: sha256 %s, SHA256SUMS says %q", p, got, want)
			}
		}
		out = append(out, f)
	}
	return out, nil
}

// readSums reads a SHA256SUMS file into name → hex digest.
func readSums(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			return nil, fmt.Errorf("%s: line %q is not \"SHA256  NAME\"", path, sc.Text())
		}
		sums[name] = sum
	}
	return sums, sc.Err()
}

// buildStamp is what a release binary's build info says of its source.
type buildStamp struct {
	module   string // github.com/ferry-dev/ferry
	version  string // the module version, v…
	revision string
	time     time.Time
}

// tag is the image's tag, the version as the archives' names spell it.
func (s *buildStamp) tag() string { return strings.TrimPrefix(s.version, "v") }

// labels are the image's OCI labels (and its manifests' and index's
// annotations).
func (s *buildStamp) labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.source":   "https://" + s.module,
		"org.opencontainers.image.version":  s.tag(),
		"org.opencontainers.image.revision": s.revision,
		"org.opencontainers.image.created":  s.time.Format(time.RFC3339),
		"org.opencontainers.image.title":    "ferry",
	}
}

// imageLayer extracts the binary of f's archive into dir and writes the
// image's layer beside it; it returns the layer's path and the binary's
// build stamp.
func imageLayer(f platformFiles, dir, caCerts string) (string, *buildStamp, error) {
	bin := filepath.Join(dir, "ferry")
	if err := extractFile(f.archive, "ferry", bin); err != nil {
		return "", nil, err
	}
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "", nil, fmt.Errorf("ferry in %s: %w", f.archive, err)
	}
	s := &buildStamp{module: bi.Main.Path, version: bi.Main.Version}
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			s.revision = kv.Value
		case "vcs.time":
			if s.time, err = time.Parse(time.RFC3339, kv.Value); err != nil {
				return "", nil, fmt.Errorf("ferry in %s: vcs.time %q: %w", f.archive, kv.Value, err)
			}
		}
	}
	if s.revision == "" || s.time.IsZero() || s.version == "" || s.version == "(devel)" {
		return "", nil, fmt.Errorf("ferry in %s carries no version, vcs.revision and vcs.time: not a release build", f.archive)
	}
	s.time = s.time.UTC()
	layer := filepath.Join(dir, "layer.tar.gz")
	files := []archiveFile{
		{name: "etc", mode: os.ModeDir | 0o755},
		{name: "etc/ssl", mode: os.ModeDir | 0o755},
		{name: "etc/ssl/certs", mode: os.ModeDir | 0o755},
		{name: "etc/ssl/certs/ca-certificates.crt", path: caCerts, mode: 0o644},
		{name: "ferry", path: bin, mode: 0o755},
		{name: "tmp", mode: os.ModeDir | os.ModeSticky | 0o777},
	}
	if err := writeTarGz(layer, files, s.time); err != nil {
		return "", nil, fmt.Errorf("layer for %s: %w", f.target, err)
	}
	return layer, s, nil
}

// extractFile writes the regular file name of the tar.gz archive to dst.
func extractFile(archive, name, dst string) error {
	in, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer in.Close()
	gz, err := gzip.NewReader(in)
	if err != nil {
		return fmt.Errorf("%s: %w", archive, err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s has no %s", archive, name)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", archive, err)
		}
		if h.Name != name || h.Typeflag != tar.TypeReg {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return writeFile(dst, func(w io.Writer) error {
			_, err := io.Copy(w, tr)
			return err
		})
	}
}
