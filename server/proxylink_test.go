package server_test

import (
	"io"
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

// TestMirrorForeignBlobFetchedOnceAcrossRepositories: a foreign blob two
// repositories list, asked for through the second while the first's
// download is still fetching it, comes from that download: its URL is
// fetched once. The old code fetched it again for the second.
func TestMirrorForeignBlobFetchedOnceAcrossRepositories(t *testing.T) {
	blob, half, cdn, release, requests := halfwayCDN(t)
	reg := fixture.NewRegistry(t)
	img, d := pushWithForeign(t, reg, "first/app", blob, cdn.URL+"/layer")
	reg.Push(t, "second/app", "v1", img)
	m := startMirror(t, "", server.WithProxy(server.Upstream{URL: reg.URL}), server.WithProxyForeignAllow(allowLoopback))
	for _, repo := range []string{"first/app", "second/app"} {
		if code, b, _ := get(t, http.MethodGet, m.URL, "/v2/"+repo+"/manifests/v1"); code != http.StatusOK {
			t.Fatalf("manifest of %s: %d %s", repo, code, b)
		}
	}
	first, err := http.Get(m.URL + "/v2/first/app/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Body.Close()
	if _, err := io.ReadFull(first.Body, make([]byte, half)); err != nil {
		t.Fatalf("the first half through first/app: %v", err)
	}
	second := pullAsync(http.DefaultClient, m.URL+"/v2/second/app/blobs/"+d.String(), d)
	time.Sleep(300 * time.Millisecond) // the second GET's download reads the first's
	release()
	if err := <-second; err != nil {
		t.Errorf("the blob through second/app: %v", err)
	}
	rest, err := io.ReadAll(first.Body)
	if err != nil || len(rest) != len(blob)-half {
		t.Errorf("the rest through first/app: %v, %d bytes", err, len(rest))
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("the URL was fetched %d times", n)
	}
}
