// Package dockerarchive is the store backend for docker-archive:FILE[:REPO:TAG],
// the tarball `docker save` writes and `docker load` reads.
//
// What ferry writes is the archive Docker 25 and later write: an OCI image
// layout (oci-layout, index.json, blobs/sha256/<hex>) with docker save's
// files beside it, so one file serves `docker load`, skopeo and crane,
// and reads back with the manifest digest it came with:
//
//	FILE (tar)
//	  blobs/sha256/<hex>   config, layers as the registry serves them
//	                       (compressed), and the manifest
//	  manifest.json        [{"Config": "blobs/sha256/<hex>",
//	                         "RepoTags": ["REPO:TAG"],
//	                         "Layers": ["blobs/sha256/<hex>", ...],
//	                         "LayerSources": {"<diff_id>": <descriptor>}}]
//	  repositories         {"REPO": {"TAG": "<top layer hex>"}}
//	  oci-layout, index.json
//
// Foreign layers are written as Docker on Windows writes them: their
// descriptor (media type, urls) in LayerSources, keyed by diff_id; with the
// include policy the layer's bytes are in the archive, with keep the file
// is absent.
//
// Reading takes any docker save archive: one with an OCI layout holding
// the image's manifest (Docker 25+, ferry) is read through that manifest;
// an older one (docker save before 25, skopeo, crane) gets a Docker v2
// schema 2 manifest built from manifest.json and the config — compressed
// layer files keep their bytes, uncompressed ones become
// application/vnd.docker.image.rootfs.diff.tar layers whose digest is the
// diff_id. The archive is read in place, never unpacked.
package dockerarchive

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"strings"

	"github.com/distribution/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/mediatype"
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/ociarchive"
	"github.com/ferry-dev/ferry/store/ocilayout"
)

// Limits on the small files read into memory.
const (
	// MaxManifestJSON bounds manifest.json.
	MaxManifestJSON = 16 << 20
	// MaxConfig bounds an image config.
	MaxConfig = 8 << 20
)

// ContainerdNameAnnotation holds an image's full reference in index.json,
// as Docker 25+ and containerd write it.
const ContainerdNameAnnotation = "io.containerd.image.name"

// ErrNotDockerArchive means the file has no manifest.json.
var ErrNotDockerArchive = errors.New("not a docker save archive (no manifest.json)")

// Source reads one image of a docker-archive.
type Source struct {
	name   string
	f      *os.File
	toc    *ociarchive.TOC
	layout *ocilayout.Layout // the archive's OCI layout, when it holds the image's manifest

	root     v1.Descriptor
	manifest []byte             // the built manifest, when there is no layout manifest
	config   []byte             // the config, served from memory
	configID v1.Hash            // its digest
	files    map[v1.Hash]string // blob digest -> file in the archive
	diffOnly map[v1.Hash]string // foreign blobs of which the archive holds only the uncompressed layer
}

var (
	_ store.Source     = (*Source)(nil)
	_ store.Named      = (*Source)(nil)
	_ store.BlobStater = (*Source)(nil)
)

// OpenSource scans the archive at p and binds to the image whose RepoTags
// hold repoTag (the only image when repoTag is empty).
func OpenSource(p, repoTag string) (*Source, error) {
	name := "docker-archive:" + p
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s := &Source{name: name, f: f, files: map[v1.Hash]string{}, diffOnly: map[v1.Hash]string{}}
	if repoTag != "" {
		s.name += ":" + repoTag
	}
	if err := s.open(repoTag); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func (s *Source) open(repoTag string) error {
	toc, err := ociarchive.Scan(s.f)
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	s.toc = toc
	entries, err := ReadManifestJSON(toc)
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	e, err := selectEntry(entries, repoTag)
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	s.config, err = readFile(toc, e.Config, MaxConfig)
	if err != nil {
		return fmt.Errorf("%s: config: %w", s.name, err)
	}
	s.configID = sha256Of(s.config)
	cfgDesc := v1.Descriptor{MediaType: types.DockerConfigJSON, Size: int64(len(s.config)), Digest: s.configID}
	if _, err := fs.Stat(toc, "index.json"); err == nil {
		layout := ocilayout.OpenFS(s.name, toc, "", "")
		d, found, err := findImage(layout, cfgDesc.Digest)
		if err != nil {
			return err
		}
		if found {
			s.layout, s.root = layout, d
			return nil
		}
	}
	return s.build(e, cfgDesc)
}

// ReadManifestJSON reads and parses an archive's manifest.json.
func ReadManifestJSON(fsys fs.FS) (tarball.Manifest, error) {
	b, err := readFile(fsys, "manifest.json", MaxManifestJSON)
	if errors.Is(err, fs.ErrNotExist) {
		if _, ierr := fs.Stat(fsys, "index.json"); ierr == nil {
			return nil, fmt.Errorf("%w; it holds an OCI layout: read it as oci-archive:", ErrNotDockerArchive)
		}
		return nil, ErrNotDockerArchive
	}
	if err != nil {
		return nil, err
	}
	var m tarball.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest.json: malformed: %w", err)
	}
	if len(m) == 0 {
		return nil, errors.New("manifest.json: lists no image")
	}
	return m, nil
}

func readFile(fsys fs.FS, name string, max int64) ([]byte, error) {
	clean, err := ociarchive.CheckEntryName(name)
	if err != nil {
		return nil, err
	}
	f, err := fsys.Open(clean)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer f.Close()
	b, err := blob.ReadAtMost(f, max)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}

// sameRef reports whether two image references name the same repository
// and tag once normalized (myapp:1 and docker.io/library/myapp:1).
func sameRef(a, b string) bool {
	if a == b {
		return true
	}
	na, err1 := reference.ParseNormalizedNamed(a)
	nb, err2 := reference.ParseNormalizedNamed(b)
	return err1 == nil && err2 == nil && na.String() == nb.String()
}

func selectEntry(entries tarball.Manifest, repoTag string) (tarball.Descriptor, error) {
	if repoTag == "" {
		if len(entries) == 1 {
			return entries[0], nil
		}
		return tarball.Descriptor{}, fmt.Errorf("the archive holds %d images (%s); name one as docker-archive:FILE:REPO:TAG", len(entries), listTags(entries))
	}
	for _, e := range entries {
		for _, t := range e.RepoTags {
			if sameRef(t, repoTag) {
				return e, nil
			}
		}
	}
	return tarball.Descriptor{}, fmt.Errorf("no image tagged %s in the archive (it holds %s): %w", repoTag, listTags(entries), store.ErrNotFound)
}

func listTags(entries tarball.Manifest) string {
	var tags []string
	for _, e := range entries {
		if len(e.RepoTags) == 0 {
			tags = append(tags, "an untagged image")
		}
		tags = append(tags, e.RepoTags...)
	}
	return strings.Join(tags, ", ")
}

// findImage looks through the archive's OCI layout for the image manifest
// whose config is cfg.
func findImage(l *ocilayout.Layout, cfg v1.Hash) (v1.Descriptor, bool, error) {
	idx, err := l.ReadIndex()
	if err != nil {
		return v1.Descriptor{}, false, err
	}
	var walk func(descs []v1.Descriptor, depth int) (v1.Descriptor, bool, error)
	walk = func(descs []v1.Descriptor, depth int) (v1.Descriptor, bool, error) {
		for _, d := range descs {
			if !d.MediaType.IsImage() && !d.MediaType.IsIndex() {
				continue
			}
			raw, err := l.FetchManifest(context.Background(), d)
			if errors.Is(err, store.ErrNotFound) {
				continue // Docker 25 lists platforms it did not save
			}
			if err != nil {
				return v1.Descriptor{}, false, err
			}
			if d.MediaType.IsImage() {
				m, err := v1.ParseManifest(bytes.NewReader(raw))
				if err != nil {
					return v1.Descriptor{}, false, fmt.Errorf("manifest %s: %w", d.Digest, err)
				}
				if m.Config.Digest == cfg {
					return v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}, true, nil
				}
				continue
			}
			if depth >= mediatype.MaxIndexDepth {
				continue
			}
			child, err := v1.ParseIndexManifest(bytes.NewReader(raw))
			if err != nil {
				return v1.Descriptor{}, false, fmt.Errorf("index %s: %w", d.Digest, err)
			}
			if r, ok, err := walk(child.Manifests, depth+1); ok || err != nil {
				return r, ok, err
			}
		}
		return v1.Descriptor{}, false, nil
	}
	return walk(idx.Manifests, 0)
}

// hex64 is a sha256 digest's hex standing alone in a file name, as crane
// and docker name layer files.
var hex64 = regexp.MustCompile(`(?:^|[^0-9a-f])([0-9a-f]{64})(?:[^0-9a-f]|$)`)

// nameDigest returns the digest a compressed layer's file name states:
// blobs/<algorithm>/<hex> as an OCI layout (and ferry) names it, in any
// algorithm go-digest knows, or a sha256 hex standing alone.
func nameDigest(clean string) (v1.Hash, bool) {
	dir, enc := path.Split(clean)
	if d, err := digest.Parse(path.Base(dir) + ":" + enc); err == nil {
		return v1.Hash{Algorithm: d.Algorithm().String(), Hex: d.Encoded()}, true
	}
	if m := hex64.FindStringSubmatch(clean); m != nil {
		return v1.Hash{Algorithm: "sha256", Hex: m[1]}, true
	}
	return v1.Hash{}, false
}

// build makes a Docker v2 schema 2 manifest for an archive without an OCI
// layout manifest.
func (s *Source) build(e tarball.Descriptor, cfgDesc v1.Descriptor) error {
	cfg, err := v1.ParseConfigFile(bytes.NewReader(s.config))
	if err != nil {
		return fmt.Errorf("%s: config %s: %w", s.name, e.Config, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(e.Layers) {
		return fmt.Errorf("%s: manifest.json lists %d layers, the config %d diff_ids", s.name, len(e.Layers), len(cfg.RootFS.DiffIDs))
	}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.DockerManifestSchema2, Config: cfgDesc}
	for i, file := range e.Layers {
		diffID := cfg.RootFS.DiffIDs[i]
		d, err := s.layer(file, diffID, e.LayerSources)
		if err != nil {
			return fmt.Errorf("%s: layer %s: %w", s.name, file, err)
		}
		m.Layers = append(m.Layers, d)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	s.manifest = raw
	s.root = v1.Descriptor{MediaType: types.DockerManifestSchema2, Size: int64(len(raw)), Digest: sha256Of(raw)}
	return nil
}

func sha256Of(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// layer describes one layer file of an archive without a layout manifest.
func (s *Source) layer(file string, diffID v1.Hash, sources map[v1.Hash]v1.Descriptor) (v1.Descriptor, error) {
	clean, err := ociarchive.CheckEntryName(file)
	if err != nil {
		return v1.Descriptor{}, err
	}
	src, isForeign := sources[diffID]
	fi, statErr := fs.Stat(s.toc, clean)
	if statErr != nil {
		if isForeign { // keep: Docker and ferry leave the file out
			return src, nil
		}
		return v1.Descriptor{}, fmt.Errorf("missing from the archive: %w", statErr)
	}
	compressed, err := isCompressed(s.toc, clean)
	if err != nil {
		return v1.Descriptor{}, err
	}
	if isForeign {
		if compressed && fi.Size() == src.Size {
			s.files[src.Digest] = clean // verified as it is read
		} else {
			s.diffOnly[src.Digest] = clean
		}
		return src, nil
	}
	if !compressed {
		s.files[diffID] = clean
		return v1.Descriptor{MediaType: types.DockerUncompressedLayer, Size: fi.Size(), Digest: diffID}, nil
	}
	d := v1.Descriptor{MediaType: types.DockerLayer, Size: fi.Size()}
	if h, ok := nameDigest(clean); ok && h != diffID {
		// crane and ferry name compressed layers by their digest; a lie
		// fails verification when the blob is read.
		d.Digest = h
	} else if d.Digest, err = hashFile(s.toc, clean); err != nil {
		return v1.Descriptor{}, err
	}
	s.files[d.Digest] = clean
	return d, nil
}

func isCompressed(fsys fs.FS, name string) (bool, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return false, err
	}
	defer f.Close()
	magic := make([]byte, 4)
	n, err := io.ReadFull(f, magic)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("%s: %w", name, err)
	}
	magic = magic[:n]
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return true, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return false, fmt.Errorf("%s: zstd-compressed layers in a docker-archive are not supported", name)
	}
	return false, nil
}

func hashFile(fsys fs.FS, name string) (v1.Hash, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return v1.Hash{}, err
	}
	defer f.Close()
	h, _, err := v1.SHA256(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return v1.Hash{}, fmt.Errorf("%s: %w", name, err)
	}
	return h, nil
}

// Name returns the location as written.
func (s *Source) Name() string { return s.name }

// Close closes the archive file.
func (s *Source) Close() error { return s.f.Close() }

// Resolve implements store.Source.
func (s *Source) Resolve(ctx context.Context) (v1.Descriptor, error) { return s.root, nil }

// FetchManifest implements store.Source.
func (s *Source) FetchManifest(ctx context.Context, desc v1.Descriptor) ([]byte, error) {
	if s.layout != nil {
		return s.layout.FetchManifest(ctx, desc)
	}
	if desc.Digest != s.root.Digest {
		return nil, fmt.Errorf("manifest %s in %s: %w", desc.Digest, s.name, store.ErrNotFound)
	}
	return s.manifest, nil
}

// FetchBlob implements store.Source.
func (s *Source) FetchBlob(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
	if s.layout != nil {
		return s.layout.FetchBlob(ctx, desc)
	}
	if file, ok := s.files[desc.Digest]; ok {
		return s.toc.Open(file)
	}
	if b := s.inMemory(desc.Digest); b != nil {
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	if file, ok := s.diffOnly[desc.Digest]; ok {
		return nil, fmt.Errorf("blob %s in %s: the archive holds only the uncompressed layer %s, not the blob: %w", desc.Digest, s.name, file, store.ErrNotFound)
	}
	return nil, fmt.Errorf("blob %s in %s: %w", desc.Digest, s.name, store.ErrNotFound)
}

// StatBlob implements store.BlobStater.
func (s *Source) StatBlob(ctx context.Context, desc v1.Descriptor) (int64, error) {
	if s.layout != nil {
		return s.layout.StatBlob(ctx, desc)
	}
	if file, ok := s.files[desc.Digest]; ok {
		fi, err := fs.Stat(s.toc, file)
		if err != nil {
			return 0, fmt.Errorf("blob %s in %s: %w", desc.Digest, s.name, err)
		}
		return fi.Size(), nil
	}
	if b := s.inMemory(desc.Digest); b != nil {
		return int64(len(b)), nil
	}
	_, err := s.FetchBlob(ctx, desc) // not held: FetchBlob says why
	return 0, err
}

// inMemory returns the built manifest or the config when d names one of
// them, nil otherwise.
func (s *Source) inMemory(d v1.Hash) []byte {
	switch d {
	case s.root.Digest:
		return s.manifest
	case s.configID:
		return s.config
	}
	return nil
}

// Target writes a docker-archive holding one image.
type Target struct {
	*ociarchive.Target
	repoTag string // familiar form, as docker save writes RepoTags
}

var (
	_ store.Target    = (*Target)(nil)
	_ store.ImageOnly = (*Target)(nil)
)

// Create starts an archive that becomes p when the copy completes; repoTag
// (REPO:TAG, may be empty) goes into RepoTags.
func Create(p, repoTag string) (*Target, error) {
	if repoTag != "" {
		n, err := reference.ParseNormalizedNamed(repoTag)
		if err != nil {
			return nil, fmt.Errorf("docker-archive:%s: %q is not a REPO:TAG reference: %w", p, repoTag, err)
		}
		n = reference.TagNameOnly(n)
		repoTag = reference.FamiliarString(n)
	}
	t, err := ociarchive.CreateAs("docker-archive", p, "")
	if err != nil {
		return nil, err
	}
	return &Target{Target: t, repoTag: repoTag}, nil
}

// ImageOnly implements store.ImageOnly: a docker-archive holds
// single-platform images.
func (t *Target) ImageOnly() {}

// Tag implements store.Target: it writes manifest.json and repositories
// for the image and records it in index.json.
func (t *Target) Tag(ctx context.Context, desc v1.Descriptor, raw []byte) error {
	if !desc.MediaType.IsImage() {
		return fmt.Errorf("%s holds single-platform images, and %s is a %s: select one platform with --platform", t.Name(), desc.Digest, desc.MediaType)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	cfgRaw, err := t.ReadBlob(m.Config.Digest, MaxConfig)
	if err != nil {
		return err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
	if err != nil {
		return fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return fmt.Errorf("manifest %s has %d layers, its config %d diff_ids", desc.Digest, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	e := tarball.Descriptor{Config: ocilayout.BlobName(m.Config.Digest)}
	if t.repoTag != "" {
		e.RepoTags = []string{t.repoTag}
	}
	for i, l := range m.Layers {
		e.Layers = append(e.Layers, ocilayout.BlobName(l.Digest))
		if mediatype.IsForeign(string(l.MediaType)) || len(l.URLs) > 0 {
			if e.LayerSources == nil {
				e.LayerSources = map[v1.Hash]v1.Descriptor{}
			}
			e.LayerSources[cfg.RootFS.DiffIDs[i]] = l
		}
	}
	mj, err := json.Marshal(tarball.Manifest{e})
	if err != nil {
		return err
	}
	t.AddFile("manifest.json", mj)
	var ann map[string]string
	if t.repoTag != "" && len(m.Layers) > 0 {
		i := strings.LastIndexByte(t.repoTag, ':') // TagNameOnly made sure there is a tag
		repo, tag := t.repoTag[:i], t.repoTag[i+1:]
		rj, err := json.Marshal(map[string]map[string]string{repo: {tag: m.Layers[len(m.Layers)-1].Digest.Hex}})
		if err != nil {
			return err
		}
		t.AddFile("repositories", rj)
		n, _ := reference.ParseNormalizedNamed(t.repoTag)
		ann = map[string]string{ContainerdNameAnnotation: n.String(), ocilayout.RefNameAnnotation: tag}
	}
	return t.TagAs(ctx, desc, raw, ann)
}
