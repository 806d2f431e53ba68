package registry

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

// A manifest known by its sha512 digest can be tagged: the registry names
// it by sha256, and the two are compared in the registry's algorithm. A
// registry that stores other bytes is still caught.
func TestTagManifestKnownBySHA512(t *testing.T) {
	reg := fixture.NewRegistry(t)
	raw, mt, _, d512 := pushManifest(t, reg)
	desc := v1.Descriptor{MediaType: types.MediaType(mt), Size: int64(len(raw)), Digest: d512}

	ref, err := name.ParseReference(reg.Ref("app", "v2"))
	if err != nil {
		t.Fatal(err)
	}
	repo, err := Open(context.Background(), ref, WithPush(), WithInsecure(true))
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Tag(context.Background(), desc, raw); err != nil {
		t.Fatalf("tag a manifest known by sha512: %v", err)
	}
	if !reg.TagExists(t, "app", "v2") {
		t.Error("v2 not tagged")
	}

	// A sha512 digest that is not the manifest's is refused before the
	// PUT (the registry, told to store the bytes by tag, would move the
	// tag); a registry that stores other bytes is caught by
	// TestRegistryStoringOtherBytesIsCaught.
	wrong := desc
	wrong.Digest.Hex = strings.Repeat("0", 128)
	puts := reg.Count("PUT", "/manifests/")
	if err := repo.Tag(context.Background(), wrong, raw); !errors.Is(err, blob.ErrDigestMismatch) {
		t.Errorf("a sha512 digest that is not the manifest's: %v, want an error wrapping blob.ErrDigestMismatch", err)
	}
	if n := reg.Count("PUT", "/manifests/") - puts; n != 0 {
		t.Errorf("%d manifest PUTs of a manifest that does not match its digest, want 0", n)
	}
}

// A registry that answers with the digest of other bytes than the
// manifest pushed (it stored something else) is caught, whether the
// manifest is known by its sha256 or its sha512 digest.
func TestRegistryStoringOtherBytesIsCaught(t *testing.T) {
	reg := fixture.NewRegistry(t)
	raw, mt, d256, d512 := pushManifest(t, reg)
	other := blob.DescriptorOf([]byte("other bytes"), types.OCIManifestSchema1).Digest
	repo := openProxied(t, reg, "app:v2", func(rp *httputil.ReverseProxy) http.Handler {
		rp.ModifyResponse = func(resp *http.Response) error {
			if resp.Request.Method == http.MethodPut && strings.Contains(resp.Request.URL.Path, "/manifests/") {
				resp.Header.Set("Docker-Content-Digest", other.String())
			}
			return nil
		}
		return rp
	})
	for _, d := range []v1.Hash{d256, d512} {
		desc := v1.Descriptor{MediaType: types.MediaType(mt), Size: int64(len(raw)), Digest: d}
		if err := repo.Tag(context.Background(), desc, raw); err == nil || !strings.Contains(err.Error(), "registry stored it as "+other.String()) {
			t.Errorf("%s: a registry answering %s: %v", d.Algorithm, other, err)
		}
	}
}

// pushManifest pushes a random image to reg as app:v1 and returns its
// manifest's bytes and media type, and the sha256 and sha512 digests of
// the bytes.
func pushManifest(t *testing.T, reg *fixture.Registry) (raw []byte, mt string, d256, d512 v1.Hash) {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "app", "v1", img)
	raw, mt, d256 = reg.Manifest(t, "app", "v1")
	sum := sha512.Sum512(raw)
	return raw, mt, d256, v1.Hash{Algorithm: "sha512", Hex: hex.EncodeToString(sum[:])}
}

// openProxied opens repoTag ("app:v1"), with push access, through a proxy
// to reg: handler returns what serves the proxy's requests, given the
// reverse proxy to reg. The proxy and the Repo are closed when the test
// ends.
func openProxied(t *testing.T, reg *fixture.Registry, repoTag string, handler func(*httputil.ReverseProxy) http.Handler) *Repo {
	t.Helper()
	target, err := url.Parse(reg.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(handler(httputil.NewSingleHostReverseProxy(target)))
	t.Cleanup(proxy.Close)
	ref, err := name.ParseReference(strings.TrimPrefix(proxy.URL, "http://") + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := Open(context.Background(), ref, WithPush(), WithInsecure(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close() })
	return repo
}

// A registry that declines a cross-repository mount opens an upload
// instead (202 with a Location); PushBlob goes on with that upload rather
// than deleting it and opening another, and Close cancels one no push
// took.
func TestDeclinedMountUploadIsUsed(t *testing.T) {
	reg := fixture.NewRegistry(t)
	img, err := random.Image(1<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "src", "v1", img)
	target, _ := url.Parse(reg.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	// The proxy declines every mount by dropping mount and from: the
	// registry behind it opens an ordinary upload.
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		q.Del("mount")
		q.Del("from")
		r.URL.RawQuery = q.Encode()
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	host := strings.TrimPrefix(proxy.URL, "http://")
	ctx := context.Background()
	open := func(s string) *Repo {
		ref, err := name.ParseReference(host + "/" + s)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Open(ctx, ref, WithPush(), WithInsecure(true))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	src, dst := open("src:v1"), open("dst:v1")
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	descOf := func(l v1.Layer) v1.Descriptor {
		d, _ := l.Digest()
		n, _ := l.Size()
		return v1.Descriptor{Digest: d, Size: n, MediaType: types.DockerLayer}
	}
	posts, deletes := reg.Count("POST", "/blobs/uploads/"), reg.Count("DELETE", "/blobs/uploads/")

	first := descOf(layers[0])
	if ok, err := dst.MountBlob(ctx, first, src); ok || err != nil {
		t.Fatalf("declined mount: %v, %v", ok, err)
	}
	rc, err := src.FetchBlob(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := dst.PushBlob(ctx, first, rc); err != nil {
		t.Fatalf("push after a declined mount: %v", err)
	}
	if n := reg.Count("POST", "/blobs/uploads/") - posts; n != 1 {
		t.Errorf("%d POSTs for a declined mount and a push, want 1", n)
	}
	if n := reg.Count("DELETE", "/blobs/uploads/") - deletes; n != 0 {
		t.Errorf("%d DELETEs, want 0", n)
	}
	if has, err := dst.HasBlob(ctx, first); err != nil || !has {
		t.Errorf("dst has the blob: %v, %v", has, err)
	}

	if ok, err := dst.MountBlob(ctx, descOf(layers[1]), src); ok || err != nil {
		t.Fatalf("declined mount: %v, %v", ok, err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if n := reg.Count("DELETE", "/blobs/uploads/") - deletes; n != 1 {
		t.Errorf("Close: %d DELETEs of the untaken upload, want 1", n)
	}
}

// OpenUpload opens a blob's upload ahead of its bytes: PushBlob then
// uses it (one POST in all), a second OpenUpload for the same blob opens
// no other, and Close cancels one no push took.
func TestOpenUploadIsUsedByPushBlob(t *testing.T) {
	reg := fixture.NewRegistry(t)
	ctx := context.Background()
	host := strings.TrimPrefix(reg.URL, "http://")
	ref, err := name.ParseReference(host + "/opened:v1")
	if err != nil {
		t.Fatal(err)
	}
	dst, err := Open(ctx, ref, WithPush(), WithInsecure(true))
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("a blob whose upload was opened first")
	desc := blob.DescriptorOf(data, types.OCILayer)
	posts, deletes := reg.Count("POST", "/blobs/uploads/"), reg.Count("DELETE", "/blobs/uploads/")
	for range 2 {
		if err := dst.OpenUpload(ctx, desc); err != nil {
			t.Fatal(err)
		}
	}
	if err := dst.PushBlob(ctx, desc, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if n := reg.Count("POST", "/blobs/uploads/") - posts; n != 1 {
		t.Errorf("%d POSTs for two OpenUploads and a push, want 1", n)
	}
	if has, err := dst.HasBlob(ctx, desc); err != nil || !has {
		t.Errorf("dst has the blob: %v, %v", has, err)
	}
	other := blob.DescriptorOf([]byte("never pushed"), types.OCILayer)
	if err := dst.OpenUpload(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if n := reg.Count("DELETE", "/blobs/uploads/") - deletes; n != 1 {
		t.Errorf("Close: %d DELETEs of the upload no push took, want 1", n)
	}
}
