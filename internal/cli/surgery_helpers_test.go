package cli

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

// appOn builds an application image on base: two ordinary layers with a
// history entry each, one empty_layer history entry, a label, an extra
// env var, its own entrypoint and created time, and ann as manifest
// annotations. Its layers are of the base manifest's schema (Docker or
// OCI gzip layers).
func appOn(t *testing.T, base v1.Image, seed int64, ann map[string]string) v1.Image {
	t.Helper()
	mt := types.DockerLayer
	if m, err := base.MediaType(); err == nil && m == types.OCIManifestSchema1 {
		mt = types.OCILayer
	}
	var adds []mutate.Addendum
	for i := range 2 {
		b := fixture.LayerTar(seed, 100+i, 4<<10)
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, tarball.WithMediaType(mt))
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.Addendum{Layer: l, MediaType: mt,
			History: v1.History{Created: v1.Time{Time: fixture.Created}, CreatedBy: fmt.Sprintf("app layer %d", i)}})
	}
	img, err := mutate.Append(base, adds...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config.Labels = map[string]string{"app": "web"}
	cf.Config.Env = append(cf.Config.Env, "APP=web")
	cf.Config.Entrypoint = []string{`C:\app\web.exe`}
	cf.Created = v1.Time{Time: fixture.Created.Add(48 * 3600e9)}
	cf.History = append(cf.History, v1.History{CreatedBy: "LABEL app=web", EmptyLayer: true})
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	if ann != nil {
		img = mutate.Annotations(img, ann).(v1.Image)
	}
	return img
}

// written is a manifest read back from a registry with its config.
type written struct {
	raw      []byte
	manifest *v1.Manifest
	cfgRaw   []byte
	cfg      *v1.ConfigFile
}

func getBlob(t *testing.T, reg *fixture.Registry, repo string, d v1.Hash) []byte {
	t.Helper()
	resp, err := http.Get(reg.URL + "/v2/" + repo + "/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("blob %s in %s: %s %v", d, repo, resp.Status, err)
	}
	return b
}

// readImage reads repo:ident (a tag or digest) and its config.
func readImage(t *testing.T, reg *fixture.Registry, repo, ident string) written {
	t.Helper()
	raw, _, _ := reg.Manifest(t, repo, ident)
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	w := written{raw: raw, manifest: m, cfgRaw: getBlob(t, reg, repo, m.Config.Digest)}
	if w.cfg, err = v1.ParseConfigFile(bytes.NewReader(w.cfgRaw)); err != nil {
		t.Fatal(err)
	}
	return w
}

// validate checks that every layer of w can be had — from repo, or for a
// foreign layer from its URL — with the declared digest and size, and
// that its decompressed bytes hash to the config's diff_id.
func validate(t *testing.T, reg *fixture.Registry, repo string, w written) {
	t.Helper()
	if len(w.cfg.RootFS.DiffIDs) != len(w.manifest.Layers) {
		t.Fatalf("%d layers, %d diff_ids", len(w.manifest.Layers), len(w.cfg.RootFS.DiffIDs))
	}
	for i, l := range w.manifest.Layers {
		var b []byte
		if l.MediaType.IsDistributable() {
			b = getBlob(t, reg, repo, l.Digest)
		} else {
			if reg.HasBlob(t, repo, l.Digest) {
				t.Errorf("foreign layer %d (%s) was stored in %s", i, l.Digest, repo)
			}
			resp, err := http.Get(l.URLs[0])
			if err != nil {
				t.Fatal(err)
			}
			b, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		if d, n, _ := v1.SHA256(bytes.NewReader(b)); d != l.Digest || n != l.Size {
			t.Errorf("layer %d: got %s (%d bytes), manifest says %s (%d)", i, d, n, l.Digest, l.Size)
		}
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		if d, _, _ := v1.SHA256(zr); d != w.cfg.RootFS.DiffIDs[i] {
			t.Errorf("layer %d: decompressed sha256 %s, diff_id %s", i, d, w.cfg.RootFS.DiffIDs[i])
		}
	}
}

func manifestOf(t *testing.T, img v1.Image) *v1.Manifest {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func configFileOf(t *testing.T, img v1.Image) *v1.ConfigFile {
	t.Helper()
	c, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func createdBy(h []v1.History) []string {
	var out []string
	for _, e := range h {
		out = append(out, fmt.Sprintf("%s|%v", e.CreatedBy, e.EmptyLayer))
	}
	return out
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("%v: %q", err, s)
	}
}

// descKeys renders descriptors as media type, digest, size and urls, so
// that nil and empty lists compare equal.
func descKeys(ds []v1.Descriptor) []string {
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%s %s %d %v", d.MediaType, d.Digest, d.Size, d.URLs))
	}
	return out
}
