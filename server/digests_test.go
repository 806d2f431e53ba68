package server_test

// Content addressed by digests other than sha256, as the OCI conformance
// suite checks it (its "sha512 blobs" and "Digest Algorithm sha512"
// categories): each kind of upload, mounts, manifests by digest, tag
// parameters and deletes. The suite itself is run by hand
// (docs/conformance.md); these keep what it checks in CI.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-dev/ferry/server"
)

// upload is one way of uploading a blob, as the conformance suite names
// them.
type upload func(r *reg, repo string, d digest.Digest, data []byte) *http.Response

var uploads = map[string]upload{
	// POST, then PUT with the whole body.
	"post+put": func(r *reg, repo string, d digest.Digest, data []byte) *http.Response {
		resp, body := r.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil)
		r.want(resp, body, http.StatusAccepted)
		resp, body = r.do(http.MethodPut, withQuery(r.location(resp), "digest", d.String()), data,
			"Content-Type", "application/octet-stream")
		r.want(resp, body, http.StatusCreated)
		return resp
	},
	// POST, PATCH chunks with Content-Range, PUT without a body.
	"chunked": func(r *reg, repo string, d digest.Digest, data []byte) *http.Response {
		resp, body := r.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest-algorithm="+d.Algorithm().String(), nil, "Content-Length", "0")
		r.want(resp, body, http.StatusAccepted)
		for off := 0; off < len(data); off += 7 {
			end := min(off+7, len(data))
			resp, body = r.do(http.MethodPatch, r.location(resp), data[off:end],
				"Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("%d-%d", off, end-1))
			r.want(resp, body, http.StatusAccepted)
		}
		resp, body = r.do(http.MethodPut, withQuery(r.location(resp), "digest", d.String()), nil)
		r.want(resp, body, http.StatusCreated)
		return resp
	},
	// POST, one PATCH without Content-Range (streamed), PUT.
	"stream": func(r *reg, repo string, d digest.Digest, data []byte) *http.Response {
		resp, body := r.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil)
		r.want(resp, body, http.StatusAccepted)
		resp, body = r.do(http.MethodPatch, r.location(resp), data, "Content-Type", "application/octet-stream")
		r.want(resp, body, http.StatusAccepted)
		resp, body = r.do(http.MethodPut, withQuery(r.location(resp), "digest", d.String()), nil)
		r.want(resp, body, http.StatusCreated)
		return resp
	},
}

// wantDigestAnswer fails unless a 201 names d in Docker-Content-Digest
// and Location, and the Location serves data.
func (r *reg) wantDigestAnswer(resp *http.Response, d digest.Digest, data []byte) {
	r.t.Helper()
	if got := resp.Header.Get("Docker-Content-Digest"); got != d.String() {
		r.t.Errorf("%s %s: Docker-Content-Digest %q, want %s (the digest the client gave)", resp.Request.Method, resp.Request.URL.Path, got, d)
	}
	loc := r.location(resp)
	if !strings.HasSuffix(loc, "/"+d.String()) {
		r.t.Errorf("%s %s: Location %q does not name %s", resp.Request.Method, resp.Request.URL.Path, loc, d)
	}
	got, body := r.do(http.MethodGet, loc, nil, "Accept", ocispec.MediaTypeImageManifest+", "+ocispec.MediaTypeImageIndex)
	r.want(got, body, http.StatusOK)
	if !bytes.Equal(body, data) {
		r.t.Errorf("GET %s: %q, want %q", loc, body, data)
	}
}

// wantBlobBy fails unless repo serves data by d: HEAD and GET answer with
// d and the size, and a range is served.
func (r *reg) wantBlobBy(repo string, d digest.Digest, data []byte) {
	r.t.Helper()
	for _, m := range []string{http.MethodHead, http.MethodGet} {
		resp, body := r.do(m, "/v2/"+repo+"/blobs/"+d.String(), nil)
		r.want(resp, body, http.StatusOK)
		if got := resp.Header.Get("Docker-Content-Digest"); got != d.String() {
			r.t.Errorf("%s blob %s: Docker-Content-Digest %q", m, d, got)
		}
		if resp.ContentLength != int64(len(data)) {
			r.t.Errorf("%s blob %s: Content-Length %d, want %d", m, d, resp.ContentLength, len(data))
		}
		if m == http.MethodGet && !bytes.Equal(body, data) {
			r.t.Errorf("GET blob %s: %q, want %q", d, body, data)
		}
	}
	if len(data) > 3 {
		resp, body := r.do(http.MethodGet, "/v2/"+repo+"/blobs/"+d.String(), nil, "Range", "bytes=1-2")
		r.want(resp, body, http.StatusPartialContent)
		if !bytes.Equal(body, data[1:3]) {
			r.t.Errorf("GET blob %s bytes=1-2: %q, want %q", d, body, data[1:3])
		}
	}
}

// wantGone fails unless repo has neither digest of a blob or manifest.
func (r *reg) wantGone(repo, kind string, ds ...digest.Digest) {
	r.t.Helper()
	for _, d := range ds {
		resp, body := r.do(http.MethodHead, "/v2/"+repo+"/"+kind+"/"+d.String(), nil)
		r.want(resp, body, http.StatusNotFound)
	}
}

func TestUploadByOtherDigests(t *testing.T) {
	storages(t, func(t *testing.T, opts ...server.Option) {
		r := newReg(t, opts...)
		for _, alg := range []digest.Algorithm{digest.SHA512, digest.SHA384} {
			for name, up := range uploads {
				for _, data := range [][]byte{[]byte("blob uploaded " + name + " by " + string(alg)), {}} {
					repo := "alg/" + strings.ReplaceAll(name, "+", "-")
					d := alg.FromBytes(data)
					resp := up(r, repo, d, data)
					r.wantDigestAnswer(resp, d, data)
					r.wantBlobBy(repo, d, data)
					// Deleting by the sha512 digest removes the blob by
					// every digest.
					resp, body := r.do(http.MethodDelete, "/v2/"+repo+"/blobs/"+d.String(), nil)
					r.want(resp, body, http.StatusAccepted)
					r.wantGone(repo, "blobs", d, digest.FromBytes(data))
				}
			}
		}
	})
}

func TestUploadByOtherDigestRefusals(t *testing.T) {
	r := newReg(t, server.WithDelete(true))
	data := []byte("some bytes")
	// A sha512 digest the bytes do not have.
	resp, body := r.do(http.MethodPost, "/v2/alg/bad/blobs/uploads/", nil)
	r.want(resp, body, http.StatusAccepted)
	resp, body = r.do(http.MethodPut, withQuery(r.location(resp), "digest", digest.SHA512.FromString("other").String()), data)
	r.wantError(resp, body, http.StatusBadRequest, "DIGEST_INVALID")
	// An algorithm go-digest does not know.
	resp, body = r.do(http.MethodPost, "/v2/alg/bad/blobs/uploads/?digest-algorithm=md5", nil)
	r.wantError(resp, body, http.StatusBadRequest, "DIGEST_INVALID")
	// Deleting by the canonical digest removes the sha512 alias too.
	d := digest.SHA512.FromBytes(data)
	uploads["post+put"](r, "alg/bad", d, data)
	resp, body = r.do(http.MethodDelete, "/v2/alg/bad/blobs/"+digest.FromBytes(data).String(), nil)
	r.want(resp, body, http.StatusAccepted)
	r.wantGone("alg/bad", "blobs", d, digest.FromBytes(data))
}

// An alias whose canonical link is gone (left by distribution alone, which
// deletes only the link named) is still deleted by its own digest.
func TestDeleteLeftoverAlias(t *testing.T) {
	root := t.TempDir()
	r := newReg(t, server.WithRoot(root), server.WithDelete(true))
	data := []byte("left behind")
	d := digest.SHA512.FromBytes(data)
	uploads["post+put"](r, "alg/left", d, data)
	canonicalLink := filepath.Join(root, "docker", "registry", "v2", "repositories", "alg", "left", "_layers", "sha256", digest.FromBytes(data).Encoded())
	if err := os.RemoveAll(canonicalLink); err != nil {
		t.Fatal(err)
	}
	resp, body := r.do(http.MethodDelete, "/v2/alg/left/blobs/"+d.String(), nil)
	r.want(resp, body, http.StatusAccepted)
	r.wantGone("alg/left", "blobs", d)
}

func TestMountByOtherDigest(t *testing.T) {
	storages(t, func(t *testing.T, opts ...server.Option) {
		r := newReg(t, opts...)
		data := []byte("a layer mounted by sha512")
		d := digest.SHA512.FromBytes(data)
		uploads["post+put"](r, "mount/src", d, data)

		// Named: 201, answered by the sha512 digest, served by it in the
		// target.
		resp, body := r.do(http.MethodPost, "/v2/mount/dst/blobs/uploads/?mount="+d.String()+"&from=mount/src", nil)
		r.want(resp, body, http.StatusCreated)
		r.wantDigestAnswer(resp, d, data)
		r.wantBlobBy("mount/dst", d, data)
		// The source keeps it when the target deletes it.
		resp, body = r.do(http.MethodDelete, "/v2/mount/dst/blobs/"+d.String(), nil)
		r.want(resp, body, http.StatusAccepted)
		r.wantGone("mount/dst", "blobs", d, digest.FromBytes(data))
		r.wantBlobBy("mount/src", d, data)

		// Anonymous (no from) and from a repository without the blob: an
		// upload session (202), which ends answered by the sha512 digest.
		for _, q := range []string{"", "&from=mount/empty"} {
			resp, body = r.do(http.MethodPost, "/v2/mount/other/blobs/uploads/?mount="+d.String()+q, nil)
			r.want(resp, body, http.StatusAccepted)
			resp, body = r.do(http.MethodPut, withQuery(r.location(resp), "digest", d.String()), data)
			r.want(resp, body, http.StatusCreated)
			r.wantDigestAnswer(resp, d, data)
		}
	})
}

// sha512Image pushes a config and two layers by sha512 and returns a
// manifest naming them so.
func (r *reg) sha512Image(repo, seed string) ocispec.Manifest {
	r.t.Helper()
	push := func(mt string, data []byte) ocispec.Descriptor {
		d := digest.SHA512.FromBytes(data)
		uploads["post+put"](r, repo, d, data)
		return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(data))}
	}
	m := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    push(ocispec.MediaTypeImageConfig, []byte(`{"architecture":"amd64","os":"linux","seed":"`+seed+`"}`)),
		Layers: []ocispec.Descriptor{
			push(ocispec.MediaTypeImageLayerGzip, []byte("layer one of "+seed)),
			push(ocispec.MediaTypeImageLayerGzip, []byte("layer two of "+seed)),
		},
	}
	m.SchemaVersion = 2
	return m
}

// putBySHA512 pushes m by its sha512 digest (plus query) and returns the
// response, the digest and the bytes.
func (r *reg) putBySHA512(repo string, m any, query string) (*http.Response, digest.Digest, []byte) {
	r.t.Helper()
	resp, desc, raw := r.pushManifestBy(digest.SHA512, repo, query, m)
	return resp, desc.Digest, raw
}

// wantManifestBy fails unless ref (a tag or digest) serves the manifest
// raw answered by d.
func (r *reg) wantManifestBy(repo, ref string, d digest.Digest, raw []byte, mediaType string) {
	r.t.Helper()
	for _, m := range []string{http.MethodHead, http.MethodGet} {
		resp, body := r.do(m, "/v2/"+repo+"/manifests/"+ref, nil, "Accept", mediaType)
		r.want(resp, body, http.StatusOK)
		if got := resp.Header.Get("Docker-Content-Digest"); got != d.String() {
			r.t.Errorf("%s manifest %s: Docker-Content-Digest %q, want %s", m, ref, got, d)
		}
		if ct := resp.Header.Get("Content-Type"); ct != mediaType {
			r.t.Errorf("%s manifest %s: Content-Type %q, want %s", m, ref, ct, mediaType)
		}
		if resp.ContentLength != int64(len(raw)) || (m == http.MethodGet && !bytes.Equal(body, raw)) {
			r.t.Errorf("%s manifest %s: %d bytes, want the %d pushed", m, ref, resp.ContentLength, len(raw))
		}
	}
}

func TestManifestByOtherDigest(t *testing.T) {
	storages(t, func(t *testing.T, opts ...server.Option) {
		r := newReg(t, opts...)
		const repo = "alg/manifests"
		img := r.sha512Image(repo, "one")
		resp, d, raw := r.putBySHA512(repo, img, "")
		r.wantDigestAnswer(resp, d, raw)
		r.wantManifestBy(repo, d.String(), d, raw, ocispec.MediaTypeImageManifest)

		// An index by sha512 of the manifest by sha512, tagged by tag
		// parameters: OCI-Tag, and the tags answer with the sha512 digest.
		idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{
			{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: int64(len(raw)), Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
		}}
		idx.SchemaVersion = 2
		resp, id, iraw := r.putBySHA512(repo, idx, "?tag=v1&tag=latest")
		if got := resp.Header.Get("OCI-Tag"); got != "v1, latest" {
			t.Errorf("PUT with tag parameters: OCI-Tag %q, want %q", got, "v1, latest")
		}
		for _, ref := range []string{id.String(), "v1", "latest"} {
			r.wantManifestBy(repo, ref, id, iraw, ocispec.MediaTypeImageIndex)
		}

		// A digest the body does not have, and a bad tag parameter.
		resp, body := r.do(http.MethodPut, "/v2/"+repo+"/manifests/"+digest.SHA512.FromString("x").String(), raw, "Content-Type", ocispec.MediaTypeImageManifest)
		r.wantError(resp, body, http.StatusBadRequest, "DIGEST_INVALID")
		resp, body = r.do(http.MethodPut, "/v2/"+repo+"/manifests/"+d.String()+"?tag=-bad", raw, "Content-Type", ocispec.MediaTypeImageManifest)
		r.wantError(resp, body, http.StatusBadRequest, "TAG_INVALID")

		// Deleting the index by sha512 removes it by both digests and its
		// tags; deleting the image by sha256 removes its sha512 name.
		resp, body = r.do(http.MethodDelete, "/v2/"+repo+"/manifests/"+id.String(), nil)
		r.want(resp, body, http.StatusAccepted)
		r.wantGone(repo, "manifests", id, digest.FromBytes(iraw))
		resp, body = r.do(http.MethodGet, "/v2/"+repo+"/tags/list", nil)
		r.want(resp, body, http.StatusOK)
		if strings.Contains(string(body), "v1") {
			t.Errorf("tags after deleting the index they named: %s", body)
		}
		resp, body = r.do(http.MethodDelete, "/v2/"+repo+"/manifests/"+digest.FromBytes(raw).String(), nil)
		r.want(resp, body, http.StatusAccepted)
		r.wantGone(repo, "manifests", d, digest.FromBytes(raw))
	})
}

func TestReferrersOfOtherDigests(t *testing.T) {
	r := newReg(t, server.WithDelete(true))
	const repo = "alg/refs"
	_, subject, _ := r.putBySHA512(repo, r.sha512Image(repo, "subject"), "")
	art := r.artifact(repo, "application/vnd.example.sig", &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: subject}, nil)
	resp, ad, araw := r.putBySHA512(repo, art, "")
	if got := resp.Header.Get("OCI-Subject"); got != subject.String() {
		t.Errorf("OCI-Subject %q, want %s", got, subject)
	}
	// Listed once, although the repository names it by two digests.
	idx, _ := r.referrers(repo, subject, "")
	if len(idx.Manifests) != 1 || idx.Manifests[0].Size != int64(len(araw)) {
		t.Fatalf("referrers of %s: %+v, want the one artifact", subject, idx.Manifests)
	}
	if got := idx.Manifests[0].Digest; got != ad && got != digest.FromBytes(araw) {
		t.Errorf("referrer listed as %s, which names neither of its digests", got)
	}
}

// Tag parameters on a push by a sha256 digest ("Tag Param" in the suite).
func TestTagParameters(t *testing.T) {
	r := newReg(t)
	const repo = "alg/tagparam"
	img := r.image(repo, "tag param")
	resp, desc, raw := r.pushManifestBy(digest.Canonical, repo, "?tag=a&tag=b", img)
	if got := resp.Header.Get("OCI-Tag"); got != "a, b" {
		t.Errorf("OCI-Tag %q, want %q", got, "a, b")
	}
	for _, tag := range []string{"a", "b"} {
		r.wantManifestBy(repo, tag, desc.Digest, raw, ocispec.MediaTypeImageManifest)
	}
	resp, body := r.do(http.MethodGet, "/v2/"+repo+"/tags/list", nil)
	r.want(resp, body, http.StatusOK)
	var tl struct{ Tags []string }
	if err := json.Unmarshal(body, &tl); err != nil || strings.Join(tl.Tags, ",") != "a,b" {
		t.Errorf("tags %s, want a and b", body)
	}
}

// The web view shows content pushed by sha512: a tag given by tag
// parameters names the sha512 digest, whose manifest, platforms and config
// are read through the repository's alias links.
func TestUIOfOtherDigests(t *testing.T) {
	r := newReg(t)
	const repo = "alg/ui"
	img := r.sha512Image(repo, "ui")
	_, d, raw := r.putBySHA512(repo, img, "?tag=image")
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{
		{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: int64(len(raw)), Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
	}}
	idx.SchemaVersion = 2
	_, id, _ := r.putBySHA512(repo, idx, "?tag=index")
	for _, ref := range []string{":image", "@" + d.String()} {
		status, _, body := getUI(t, r.url, "/ui/m/"+repo+ref, true)
		if status != http.StatusOK {
			t.Fatalf("web view of %s%s: %d %s", repo, ref, status, body)
		}
		wantContains(t, "web view of "+repo+ref, body, `"digest": "`+d.String()+`"`, `"architecture": "amd64"`, img.Layers[0].Digest.String())
	}
	status, _, body := getUI(t, r.url, "/ui/m/"+repo+":index", true)
	if status != http.StatusOK {
		t.Fatalf("web view of %s:index: %d %s", repo, status, body)
	}
	wantContains(t, "web view of "+repo+":index", body, `"digest": "`+id.String()+`"`, `"cached": true`, `"layersCached": 2`)
}
