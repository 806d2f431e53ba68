package imagemod

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/platform"
	"github.com/ferry-dev/ferry/store/ocilayout"
)

// TestEntrypointCreatedAndAttach appends a layer on scratch with an
// entrypoint and a created time, then attaches a file to the result as a
// referrer, twice: the config carries both, and the registry's referrers
// API lists the one artifact manifest, whose layer is the file.
func TestEntrypointCreatedAndAttach(t *testing.T) {
	ctx := context.Background()
	reg := fixture.NewRegistry(t)
	dst := pushTo(t, reg, "app", "v1")
	tree, spec := helloTree(t, "linux/arm64")
	created := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	if _, err := Append(ctx, nil, dst, nil, WithPlatform(spec), WithEntrypoint()); err == nil {
		t.Error("an empty entrypoint was taken")
	}
	res, err := Append(ctx, nil, dst, []Layer{{Path: tree}}, WithPlatform(spec), WithEntrypoint("/hello", "-v"), WithCreated(created))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := dst.FetchManifest(ctx, res.Written)
	if err != nil {
		t.Fatal(err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := dst.FetchBlob(ctx, m.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := v1.ParseConfigFile(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{"/hello", "-v"}) || !cfg.Created.Equal(created) ||
		len(cfg.History) != 1 || !cfg.History[0].Created.Equal(created) || cfg.Architecture != "arm64" {
		t.Errorf("config: entrypoint %q, created %s, history %+v, arch %s", cfg.Config.Entrypoint, cfg.Created, cfg.History, cfg.Architecture)
	}

	sbom := filepath.Join(t.TempDir(), "app.cdx.json")
	if err := os.WriteFile(sbom, []byte(`{"bomFormat":"CycloneDX"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	const artifactType = "application/vnd.cyclonedx+json"
	if _, err := Attach(ctx, dst, v1.Descriptor{}, artifactType, sbom); err == nil {
		t.Error("attached to no subject")
	}
	var first v1.Descriptor
	for i := range 2 {
		d, err := Attach(ctx, dst, res.Written, artifactType, sbom, WithAnnotations(map[string]string{"org.opencontainers.image.created": created.Format(time.RFC3339)}))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = d
		} else if d.Digest != first.Digest {
			t.Errorf("attaching again wrote %s, first %s", d.Digest, first.Digest)
		}
	}
	refs, err := dst.Referrers(ctx, res.Written)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 1 || refs[0].Digest != first.Digest || refs[0].ArtifactType != artifactType {
		t.Fatalf("referrers of %s: %+v, want %s", res.Written.Digest, refs, first.Digest)
	}
	raw, err = dst.FetchManifest(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	am, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if am.Subject == nil || am.Subject.Digest != res.Written.Digest || am.ArtifactType != artifactType || len(am.Layers) != 1 ||
		am.Layers[0].Annotations[AnnotationTitle] != "app.cdx.json" {
		t.Fatalf("artifact manifest %s", raw)
	}
	rc, err = dst.FetchBlob(ctx, am.Layers[0])
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != `{"bomFormat":"CycloneDX"}` {
		t.Errorf("the attached blob: %q %v", got, err)
	}
}

// TestAttachToLayout: attached twice to an image in an OCI layout, a file
// is one referrer, listed once, untagged, in index.json with its
// artifactType and annotations, and the layout lists it as a referrer of
// the image.
func TestAttachToLayout(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "layout")
	dst := ocilayout.Open(dir, "v1", "")
	defer dst.Close()
	tree, spec := helloTree(t, "linux/amd64")
	res, err := Append(ctx, nil, dst, []Layer{{Path: tree}}, WithPlatform(spec))
	if err != nil {
		t.Fatal(err)
	}
	sbom := filepath.Join(t.TempDir(), "app.cdx.json")
	if err := os.WriteFile(sbom, []byte(`{"bomFormat":"CycloneDX"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	const artifactType = "application/vnd.cyclonedx+json"
	ann := map[string]string{"org.opencontainers.image.created": "2026-12-07T03:00:00Z"}
	var d v1.Descriptor
	for range 2 {
		if d, err = Attach(ctx, dst, res.Written, artifactType, sbom, WithAnnotations(ann)); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := dst.ReadIndex()
	if err != nil {
		t.Fatal(err)
	}
	var listed []v1.Descriptor
	for _, e := range idx.Manifests {
		if e.Digest == d.Digest {
			listed = append(listed, e)
		}
	}
	if len(listed) != 1 || listed[0].ArtifactType != artifactType || listed[0].Annotations[ocilayout.RefNameAnnotation] != "" ||
		listed[0].Annotations["org.opencontainers.image.created"] != ann["org.opencontainers.image.created"] {
		t.Errorf("index.json lists the SBOM as %+v, want one untagged entry with its artifactType and annotations", listed)
	}
	refs, err := dst.Referrers(ctx, res.Written)
	if err != nil || len(refs) != 1 || refs[0].Digest != d.Digest || refs[0].ArtifactType != artifactType {
		t.Errorf("referrers of %s: %+v, %v; want %s", res.Written.Digest, refs, err, d.Digest)
	}
}

// helloTree writes a directory holding one file, hello, for a layer, and
// parses the platform plat.
func helloTree(t *testing.T, plat string) (string, platform.Spec) {
	t.Helper()
	tree := t.TempDir()
	if err := os.WriteFile(filepath.Join(tree, "hello"), []byte("hi"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec, err := platform.ParseSpec(plat)
	if err != nil {
		t.Fatal(err)
	}
	return tree, spec
}
