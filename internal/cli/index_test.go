package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

const (
	ltsc2019 = "10.0.17763.5830"
	ltsc2022 = "10.0.20348.2461"
)

// indexEnv holds an ltsc2019 image in app/web and an ltsc2022 image in
// another repository of the same registry.
type indexEnv struct {
	reg          *fixture.Registry
	i19, i22     v1.Image
	ref19, ref22 string
}

func newIndexEnv(t *testing.T) *indexEnv {
	t.Helper()
	e := &indexEnv{reg: fixture.NewRegistry(t)}
	urls := fixture.NewURLServer(t)
	e.i19 = appOn(t, urls.WindowsImage(t, fixture.ImageSpec{OSVersion: ltsc2019, ForeignLayers: 2, Layers: 1, Seed: 1}), 7, nil)
	e.i22 = appOn(t, urls.WindowsImage(t, fixture.ImageSpec{OSVersion: ltsc2022, ForeignLayers: 2, Layers: 1, Seed: 2}), 8, nil)
	e.reg.Push(t, "app/web", "ltsc2019", e.i19)
	e.reg.Push(t, "build/web", "ltsc2022", e.i22)
	e.ref19, e.ref22 = e.reg.Ref("app/web", "ltsc2019"), e.reg.Ref("build/web", "ltsc2022")
	return e
}

func writeSpec(t *testing.T, yml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "spec.yml")
	if err := os.WriteFile(p, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readIndex(t *testing.T, reg *fixture.Registry, repo, tag string) (*v1.IndexManifest, v1.Hash) {
	t.Helper()
	raw, _, d := reg.Manifest(t, repo, tag)
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return idx, d
}

func TestIndexPushSpecPlatformsFromConfigs(t *testing.T) {
	e := newIndexEnv(t)
	spec := writeSpec(t, `image: `+e.reg.Ref("app/web", "multi")+`
tags: ['1.0', stable]
manifests:
  - image: `+e.ref19+`
  - image: `+e.ref22+`
    platform:
      os: windows
      architecture: amd64
    colour: blue
`)
	puts := e.reg.Count("PUT", "/blobs/uploads/")
	_, stderr, code := run(t, "index", "push-spec", spec)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "unknown key manifests[1].colour") {
		t.Errorf("no warning about the unknown key: %s", stderr)
	}
	idx, d := readIndex(t, e.reg, "app/web", "multi")
	for _, tag := range []string{"1.0", "stable"} {
		if _, _, dt := e.reg.Manifest(t, "app/web", tag); dt != d {
			t.Errorf("tag %s points at %s, the index is %s", tag, dt, d)
		}
	}
	if idx.MediaType != types.DockerManifestList || len(idx.Manifests) != 2 {
		t.Fatalf("index %s with %d entries", idx.MediaType, len(idx.Manifests))
	}
	for i, want := range []struct {
		img v1.Image
		ver string
	}{{e.i19, ltsc2019}, {e.i22, ltsc2022}} {
		m := idx.Manifests[i]
		if m.Digest != digestOf(t, want.img) {
			t.Errorf("entry %d is %s, want the image's own %s", i, m.Digest, digestOf(t, want.img))
		}
		if m.Platform == nil || m.Platform.OS != "windows" || m.Platform.Architecture != "amd64" || m.Platform.OSVersion != want.ver {
			t.Errorf("entry %d platform %+v, want windows/amd64 %s", i, m.Platform, want.ver)
		}
		// Every blob of the entry is in the index's repository.
		w := readImage(t, e.reg, "app/web", m.Digest.String())
		validate(t, e.reg, "app/web", w)
	}
	// The ltsc2022 image came from another repository: mounted, not uploaded.
	if n := e.reg.Count("PUT", "/blobs/uploads/") - puts; n != 0 {
		t.Errorf("%d blob uploads, want 0 (mounts)", n)
	}
}

func TestIndexPushSpecOCISpellings(t *testing.T) {
	e := newIndexEnv(t)
	spec := writeSpec(t, `image: `+e.reg.Ref("app/web", "oci")+`
annotations:
  org.opencontainers.image.description: two builds
manifests:
  - image: `+e.ref19+`
    platform: {os: windows, architecture: amd64, os.version: 10.0.17763.9999, os.features: [win32k]}
  - image: `+e.ref22+`
    platform: {os: windows, architecture: amd64, osversion: 10.0.20348.1}
`)
	if _, stderr, code := run(t, "index", "push-spec", spec); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	idx, _ := readIndex(t, e.reg, "app/web", "oci")
	if idx.MediaType != types.OCIImageIndex || idx.Annotations["org.opencontainers.image.description"] != "two builds" {
		t.Errorf("index %s annotations %v", idx.MediaType, idx.Annotations)
	}
	p0, p1 := idx.Manifests[0].Platform, idx.Manifests[1].Platform
	if p0.OSVersion != "10.0.17763.9999" || len(p0.OSFeatures) != 1 || p0.OSFeatures[0] != "win32k" || p1.OSVersion != "10.0.20348.1" {
		t.Errorf("platforms %+v %+v", p0, p1)
	}
}

func TestIndexPushSpecFailuresWriteNothing(t *testing.T) {
	e := newIndexEnv(t)
	missing := e.reg.Ref("app/none", "x")
	for _, c := range []struct{ name, yml, want string }{
		{"missing image", "image: " + e.reg.Ref("app/web", "bad") + "\ntags: [bad2]\nmanifests:\n  - image: " + e.ref19 + "\n  - image: " + missing + "\n", "app/none"},
		{"duplicate platform", "image: " + e.reg.Ref("app/web", "bad") + "\ntags: [bad2]\nmanifests:\n  - image: " + e.ref19 + "\n  - image: " + e.reg.Ref("app/web", "ltsc2019") + "\n", "duplicate platform"},
	} {
		_, stderr, code := run(t, "index", "push-spec", writeSpec(t, c.yml))
		if code != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d: %s", c.name, code, stderr)
		}
		for _, tag := range []string{"bad", "bad2"} {
			if e.reg.TagExists(t, "app/web", tag) {
				t.Errorf("%s: tag %s written", c.name, tag)
			}
		}
	}
	if _, stderr, code := run(t, "index", "push-spec", writeSpec(t, "manifests: []\n")); code != 2 {
		t.Errorf("spec without image: exit %d: %s", code, stderr)
	}
}

func TestIndexCreate(t *testing.T) {
	e := newIndexEnv(t)
	out, stderr, code := run(t, "index", "create", "--annotation", "a=b", e.reg.Ref("app/web", "both"), e.ref22, e.ref19)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	idx, d := readIndex(t, e.reg, "app/web", "both")
	if !strings.HasSuffix(strings.TrimSpace(out), "@"+d.String()) {
		t.Errorf("stdout %q, index %s", out, d)
	}
	if len(idx.Manifests) != 2 || idx.Manifests[0].Platform.OSVersion != ltsc2022 || idx.Annotations["a"] != "b" {
		t.Errorf("index %+v", idx)
	}
	if _, stderr, code := run(t, "index", "create", e.reg.Ref("app/web", "x")); code != 2 {
		t.Errorf("no SRC: exit %d: %s", code, stderr)
	}
}
