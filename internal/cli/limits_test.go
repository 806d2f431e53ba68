package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/testkit/faults"
	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/store/registry"
	"github.com/ferry-dev/ferry/transfer"
)

// The hard limits: each is refused through the CLI with exit 1, a message
// that says which limit, and nothing written at the destination.

// handLayout writes an OCI layout blob by blob, for content no library
// would produce.
type handLayout struct {
	t    *testing.T
	dir  string
	tags []v1.Descriptor
}

func newHandLayout(t *testing.T) *handLayout {
	dir := filepath.Join(t.TempDir(), "layout")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return &handLayout{t: t, dir: dir}
}

// blob stores b under its digest (alg "sha256" or "sha512").
func (l *handLayout) blob(alg string, mt types.MediaType, b []byte) v1.Descriptor {
	var sum []byte
	switch alg {
	case "sha512":
		s := sha512.Sum512(b)
		sum = s[:]
	default:
		s := sha256.Sum256(b)
		sum = s[:]
	}
	d := v1.Descriptor{MediaType: mt, Size: int64(len(b)), Digest: v1.Hash{Algorithm: alg, Hex: fmt.Sprintf("%x", sum)}}
	p := filepath.Join(l.dir, "blobs", alg, d.Digest.Hex)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		l.t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		l.t.Fatal(err)
	}
	return d
}

// json stores v encoded as a sha256 blob.
func (l *handLayout) json(mt types.MediaType, v any) v1.Descriptor {
	b, err := json.Marshal(v)
	if err != nil {
		l.t.Fatal(err)
	}
	return l.blob("sha256", mt, b)
}

// image stores a config and the given layers and returns the manifest.
func (l *handLayout) image(layers ...v1.Descriptor) v1.Descriptor {
	cfg := l.json(types.OCIConfigJSON, map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": []string{}}})
	return l.json(types.OCIManifestSchema1, v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cfg, Layers: layers})
}

// tag lists d in index.json as tag.
func (l *handLayout) tag(d v1.Descriptor, tag string) string {
	d.Annotations = map[string]string{"org.opencontainers.image.ref.name": tag}
	l.tags = append(l.tags, d)
	b, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: l.tags})
	if err != nil {
		l.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(l.dir, "index.json"), b, 0o644); err != nil {
		l.t.Fatal(err)
	}
	return "oci:" + l.dir + ":" + tag
}

func layer(l *handLayout, alg string, n int) v1.Descriptor {
	return l.blob(alg, types.OCILayer, bytes.Repeat([]byte{byte(n)}, 100+n))
}

func TestLimitsLocal(t *testing.T) {
	t.Parallel()
	bigPad := strings.Repeat(" ", registry.MaxManifestSize)
	cases := []struct {
		name  string
		build func(l *handLayout) v1.Descriptor
		msg   []string
	}{
		{"manifest over 4 MiB", func(l *handLayout) v1.Descriptor {
			m := l.image(layer(l, "sha256", 1))
			raw, _ := os.ReadFile(filepath.Join(l.dir, "blobs", "sha256", m.Digest.Hex))
			return l.blob("sha256", m.MediaType, append(raw, bigPad...))
		}, []string{"exceeds the 4194304-byte limit"}},
		{"index over 4 MiB", func(l *handLayout) v1.Descriptor {
			m := l.image(layer(l, "sha256", 1))
			raw, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{m}})
			return l.blob("sha256", types.OCIImageIndex, append(raw, bigPad...))
		}, []string{"exceeds the 4194304-byte limit"}},
		{"unknown digest algorithm", func(l *handLayout) v1.Descriptor {
			bad := layer(l, "sha256", 1)
			bad.Digest = v1.Hash{Algorithm: "md5", Hex: "0123456789abcdef0123456789abcdef"}
			return l.image(bad)
		}, []string{"unsupported", "md5"}},
		{"indexes nested too deep", func(l *handLayout) v1.Descriptor {
			d := l.image(layer(l, "sha256", 1))
			for range transfer.MaxIndexDepth + 1 {
				d = l.json(types.OCIImageIndex, v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{d}})
			}
			return d
		}, []string{fmt.Sprintf("nested more than %d deep", transfer.MaxIndexDepth)}},
		{"too many layers", func(l *handLayout) v1.Descriptor {
			ls := make([]v1.Descriptor, transfer.MaxLayers+1)
			for i := range ls {
				ls[i] = layer(l, "sha256", 1)
			}
			return l.image(ls...)
		}, []string{fmt.Sprintf("%d layers, more than the limit of %d", transfer.MaxLayers+1, transfer.MaxLayers)}},
		{"layer size disagrees with the bytes", func(l *handLayout) v1.Descriptor {
			d := layer(l, "sha256", 1)
			d.Size++
			return l.image(d)
		}, []string{"size mismatch", "declared 102"}},
		{"manifest size disagrees with the bytes", func(l *handLayout) v1.Descriptor {
			d := l.image(layer(l, "sha256", 1))
			d.Size--
			return d
		}, []string{"size mismatch"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			l := newHandLayout(t)
			src := l.tag(c.build(l), "v1")
			dst := fixture.NewRegistry(t)
			_, stderr, code := run(t, "push", src, dst.Ref("limits", "v1"))
			if code != 1 {
				t.Fatalf("exit %d, want 1: %s", code, stderr)
			}
			for _, want := range c.msg {
				if !strings.Contains(stderr, want) {
					t.Errorf("message lacks %q: %s", want, stderr)
				}
			}
			if dst.TagExists(t, "limits", "v1") {
				t.Error("the refused image was tagged")
			}
		})
	}
}

// TestLimitsSHA512 copies an image whose layer has a sha512 digest from a
// layout to a registry and back into a layout.
func TestLimitsSHA512(t *testing.T) {
	t.Parallel()
	l := newHandLayout(t)
	ly := layer(l, "sha512", 7)
	src := l.tag(l.image(ly), "v1")
	dst := fixture.NewRegistry(t)
	if _, stderr, code := run(t, "push", src, dst.Ref("sha512", "v1")); code != 0 {
		t.Fatalf("push: exit %d: %s", code, stderr)
	}
	if !dst.HasBlob(t, "sha512", ly.Digest) {
		t.Errorf("registry lacks %s", ly.Digest)
	}
	out := filepath.Join(t.TempDir(), "back")
	if _, stderr, code := run(t, "pull", "--format", "oci", dst.Ref("sha512", "v1"), out); code != 0 {
		t.Fatalf("pull: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "blobs", "sha512", ly.Digest.Hex)); err != nil {
		t.Errorf("layout lacks the sha512 blob: %v", err)
	}
}

// TestLimitsRegistryManifestSize serves a manifest and an index padded
// past 4 MiB from a registry (through the proxy, since a registry refuses
// to store them).
func TestLimitsRegistryManifestSize(t *testing.T) {
	t.Parallel()
	fi := newFaultImage(t)
	fi.reg.PushIndex(t, "win/index", "v1", fi.urls.WindowsImage(t, fixture.ImageSpec{OSVersion: fixture.OSVersion1, ForeignLayers: 1, Layers: 1, LayerSize: 1024, Seed: 11}))
	pad := func(b []byte) []byte { return append(b, bytes.Repeat([]byte(" "), registry.MaxManifestSize)...) }
	for _, c := range []struct{ name, repo string }{{"manifest", "win/app"}, {"index", "win/index"}} {
		t.Run(c.name, func(t *testing.T) {
			p := faults.New(t, fi.reg.URL)
			p.Add(faults.Fault{Kind: faults.Rewrite, Method: "GET", Path: "/manifests/", Times: -1, Fn: pad})
			dst := fixture.NewRegistry(t)
			_, stderr, code := run(t, "copy", p.Host+"/"+c.repo+":v1", dst.Ref("big", "v1"))
			if code != 1 || !strings.Contains(stderr, "exceeds the 4194304-byte limit") {
				t.Errorf("exit %d, want 1 naming the limit: %s", code, stderr)
			}
			if dst.TagExists(t, "big", "v1") {
				t.Error("the refused image was tagged")
			}
		})
	}
}

// TestLimitsRedirects follows 10 redirects to a foreign blob and refuses
// 11.
func TestLimitsRedirects(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		loops int // extra redirects before the fwlink's own
		ok    bool
	}{{9, true}, {10, false}} {
		t.Run(fmt.Sprint(c.loops+1), func(t *testing.T) {
			t.Parallel()
			fi := newFaultImage(t)
			p := faults.New(t, fi.urls.URL)
			if _, stderr, code := run(t, "copy", "--foreign-rewrite-urls", fi.urls.URL+"/="+p.URL+"/", fi.reg.Ref("win/app", "v1"), fi.reg.Ref("win/proxied", "v1")); code != 0 {
				t.Fatalf("staging: exit %d: %s", code, stderr)
			}
			p.Add(faults.Fault{Kind: faults.Redirect, Path: "/fwlink", Times: c.loops})
			dst := fixture.NewRegistry(t)
			_, stderr, code := run(t, "copy", "--foreign", "include", "--foreign-allow", allowLoopback, fi.reg.Ref("win/proxied", "v1"), dst.Ref("app", "v1"))
			if c.ok {
				if code != 0 {
					t.Fatalf("exit %d: %s", code, stderr)
				}
				return
			}
			if code != 1 || !strings.Contains(stderr, "too many redirects") || !strings.Contains(stderr, "at most 10") {
				t.Errorf("exit %d, want 1 naming the redirect limit: %s", code, stderr)
			}
			if dst.TagExists(t, "app", "v1") {
				t.Error("a failed copy left the tag")
			}
		})
	}
}

// TestLimitsRegistryIndexEntrySize copies an index, held by a registry,
// whose entry declares a size its manifest does not have.
func TestLimitsRegistryIndexEntrySize(t *testing.T) {
	t.Parallel()
	fi := newFaultImage(t)
	raw, mt, d := fi.reg.Manifest(t, "win/app", "v1")
	entry := v1.Descriptor{MediaType: types.MediaType(mt), Digest: d, Size: int64(len(raw)) + 1, Platform: &v1.Platform{OS: "windows", Architecture: "amd64"}}
	idx, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{entry}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(fi.reg.Ref("win/app", "lying"))
	if err != nil {
		t.Fatal(err)
	}
	repo, err := registry.Open(context.Background(), ref, registry.WithPush())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(idx)
	desc := v1.Descriptor{MediaType: types.OCIImageIndex, Size: int64(len(idx)), Digest: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sum)}}
	if err := repo.Tag(context.Background(), desc, idx); err != nil {
		t.Fatal(err)
	}
	dst := fixture.NewRegistry(t)
	_, stderr, code := run(t, "copy", fi.reg.Ref("win/app", "lying"), dst.Ref("app", "v1"))
	if code != 1 || !strings.Contains(stderr, "size mismatch") || !strings.Contains(stderr, d.String()) {
		t.Errorf("exit %d, want 1 naming the manifest and the size mismatch: %s", code, stderr)
	}
	if dst.TagExists(t, "app", "v1") {
		t.Error("the refused index was tagged")
	}
}
