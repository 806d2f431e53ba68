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
)

// TestEntrypointCreatedAndAttach appends a layer on scratch with an
// entrypoint and a created time, then attaches a file to the result as a
// referrer, twice: the config carries both, and the registry's referrers
// API lists the one artifact manifest, whose layer is the file.
func TestEntrypointCreatedAndAttach(t *testing.T) {
	ctx := context.Background()
	reg := fixture.NewRegistry(t)
	dst := pushTo(t, reg, "app", "v1")
	tree := t.TempDir()
	if err := os.WriteFile(filepath.Join(tree, "hello"), []byte("hi"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec, err := platform.ParseSpec("linux/arm64")
	if err != nil {
		t.Fatal(err)
	}
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
