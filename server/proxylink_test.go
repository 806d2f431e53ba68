package server_test

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/server"
)

// TestMirrorLinksBlobsOtherRepositoriesHold: a blob the mirror holds for
// one repository is served for another whose upstream repository has it
// (a HEAD there says so) without being fetched again; not for a
// repository whose upstream does not have it. A foreign blob is linked
// the same way for a repository whose cached manifest lists it with
// urls, with the URL server gone. The old code fetched each again.
func TestMirrorLinksBlobsOtherRepositoriesHold(t *testing.T) {
	reg := fixture.NewRegistry(t)
	img, err := random.Image(64<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "a/app", "v1", img)
	reg.Push(t, "b/app", "v1", img)
	other, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "c/app", "v1", other)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "data")
	m := startMirror(t, root, server.WithProxy(server.Upstream{URL: reg.URL}))
	wantBlob(t, m.URL, "a/app", d)
	// The client has the blob before it is stored: wait for its link.
	waitLinked(t, root, "a/app", d)
	gets, heads := reg.Count("GET", "/blobs/"+d.String()), reg.Count("HEAD", "/b/app/blobs/"+d.String())
	wantBlob(t, m.URL, "b/app", d)
	if n := reg.Count("GET", "/blobs/"+d.String()); n != gets {
		t.Errorf("a blob the mirror holds for a/app was fetched again for b/app: %d GETs upstream, want %d", n, gets)
	}
	if n := reg.Count("HEAD", "/b/app/blobs/"+d.String()) - heads; n != 1 {
		t.Errorf("b/app's upstream was asked %d times whether it has the blob, want 1", n)
	}
	if code, b, _ := get(t, http.MethodGet, m.URL, "/v2/c/app/blobs/"+d.String()); code != http.StatusNotFound {
		t.Errorf("a blob c/app's upstream does not have, held for a/app: %d %.200s, want 404", code, b)
	}

	// Foreign: the URL is fetched for the first repository only.
	e := fixture.MicrosoftLike(t)
	froot := filepath.Join(t.TempDir(), "data")
	fm := startMirror(t, froot, server.WithProxy(server.Upstream{URL: e.Reg.URL}), server.WithProxyForeignAllow(allowLoopback))
	pullAll(t, fm.URL, fixture.Repo, e)
	for _, d := range e.Foreign {
		waitLinked(t, froot, fixture.Repo, d)
	}
	for _, tag := range []string{fixture.IndexTag, fixture.SingleTag} {
		// go-containerregistry's push leaves the foreign layers out.
		src, err := name.ParseReference(e.Reg.Ref(fixture.Repo, tag), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Get(src)
		if err != nil {
			t.Fatal(err)
		}
		dst, err := name.ParseReference(e.Reg.Ref("copy/"+fixture.Repo, tag), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if desc.MediaType.IsIndex() {
			idx, err := desc.ImageIndex()
			if err == nil {
				err = remote.WriteIndex(dst, idx)
			}
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		img, err := desc.Image()
		if err == nil {
			err = remote.Write(dst, img)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	urls := e.URLs.Requests("")
	e.URLs.Close()
	pullAll(t, fm.URL, "copy/"+fixture.Repo, e)
	if n := e.URLs.Requests(""); n != urls {
		t.Errorf("foreign blobs the mirror holds were fetched from their URLs again: %d requests, want %d", n, urls)
	}
}

// waitLinked waits until blob d is stored in the mirror's root for
// repository repo: a client has a blob before it is stored.
func waitLinked(t *testing.T, root, repo string, d v1.Hash) {
	t.Helper()
	link := filepath.Join(root, "docker", "registry", "v2", "repositories", "*", filepath.FromSlash(repo), "_layers", "sha256", d.Hex, "link")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if found, _ := filepath.Glob(link); len(found) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("blob %s pulled through %s is not stored", d, repo)
		}
	}
}
