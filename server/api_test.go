package server_test

// API tests written from the OCI distribution-spec 1.1 text (spec.md), one
// workflow category at a time: pull, push, content discovery and content
// management. They speak plain HTTP to the embedded registry, the way any
// client would, and each assertion names what the spec requires.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-dev/ferry/server"
)

// reg is a registry under test and the client side of the API.
type reg struct {
	t          *testing.T
	url        string
	user, pass string // basic auth when user is set
}

func newReg(t *testing.T, opts ...server.Option) *reg {
	t.Helper()
	h, err := server.NewHandler(context.Background(), opts...)
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return &reg{t: t, url: s.URL}
}

// storages runs f against in-memory storage and against a filesystem root.
func storages(t *testing.T, f func(t *testing.T, opts ...server.Option)) {
	t.Run("inmemory", func(t *testing.T) { f(t, server.WithInMemory(), server.WithDelete(true)) })
	t.Run("filesystem", func(t *testing.T) { f(t, server.WithRoot(t.TempDir()), server.WithDelete(true)) })
}

// do sends a request; path is relative to the registry, or a full URL (a
// Location header). Header pairs follow the body.
func (r *reg) do(method, path string, body []byte, header ...string) (*http.Response, []byte) {
	r.t.Helper()
	u := path
	if !strings.HasPrefix(path, "http") {
		u = r.url + path
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if r.user != "" {
		req.SetBasicAuth(r.user, r.pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, b
}

// want fails unless resp has the status code.
func (r *reg) want(resp *http.Response, body []byte, code int) {
	r.t.Helper()
	if resp.StatusCode != code {
		r.t.Fatalf("%s %s: status %d, want %d; body %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, code, body)
	}
}

// wantError fails unless the response is code with the spec error code
// errCode in its body.
func (r *reg) wantError(resp *http.Response, body []byte, code int, errCode string) {
	r.t.Helper()
	r.want(resp, body, code)
	var e struct{ Errors []struct{ Code string } }
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 || e.Errors[0].Code != errCode {
		r.t.Fatalf("%s %s: body %s, want error code %s", resp.Request.Method, resp.Request.URL.Path, body, errCode)
	}
}

// location resolves a Location header against the registry.
func (r *reg) location(resp *http.Response) string {
	r.t.Helper()
	loc := resp.Header.Get("Location")
	if loc == "" {
		r.t.Fatalf("%s %s: no Location header", resp.Request.Method, resp.Request.URL.Path)
	}
	u, err := resp.Request.URL.Parse(loc)
	if err != nil {
		r.t.Fatalf("Location %q: %v", loc, err)
	}
	return u.String()
}

// withQuery adds a query parameter to a URL that may already have some.
func withQuery(u, k, v string) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + url.QueryEscape(k) + "=" + url.QueryEscape(v)
}

// pushBlob uploads data monolithically (POST then PUT) and returns its
// descriptor.
func (r *reg) pushBlob(repo, mediaType string, data []byte) ocispec.Descriptor {
	r.t.Helper()
	resp, body := r.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil)
	r.want(resp, body, http.StatusAccepted)
	d := digest.FromBytes(data)
	resp, body = r.do(http.MethodPut, withQuery(r.location(resp), "digest", d.String()), data,
		"Content-Type", "application/octet-stream")
	r.want(resp, body, http.StatusCreated)
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

// wantBlob fails unless GET of the blob in repo answers 200 with data.
func (r *reg) wantBlob(repo string, data []byte) {
	r.t.Helper()
	resp, body := r.do(http.MethodGet, "/v2/"+repo+"/blobs/"+digest.FromBytes(data).String(), nil)
	r.want(resp, body, http.StatusOK)
	if !bytes.Equal(body, data) {
		r.t.Errorf("blob pulled back from %s as %q, pushed %q", repo, body, data)
	}
}

// pushManifest puts a manifest or index at ref (tag or digest) and returns
// the response and the manifest's descriptor.
func (r *reg) pushManifest(repo, ref string, m any) (*http.Response, ocispec.Descriptor) {
	r.t.Helper()
	resp, desc, _ := r.pushManifestBy(digest.Canonical, repo, ref, m)
	return resp, desc
}

// pushManifestBy is pushManifest with the digest in algorithm alg; ref
// "" (or "?query") pushes by that digest. It also returns the bytes.
func (r *reg) pushManifestBy(alg digest.Algorithm, repo, ref string, m any) (*http.Response, ocispec.Descriptor, []byte) {
	r.t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		r.t.Fatal(err)
	}
	var mt struct{ MediaType string }
	_ = json.Unmarshal(b, &mt)
	d := alg.FromBytes(b)
	if ref == "" || strings.HasPrefix(ref, "?") {
		ref = d.String() + ref
	}
	resp, body := r.do(http.MethodPut, "/v2/"+repo+"/manifests/"+ref, b, "Content-Type", mt.MediaType)
	r.want(resp, body, http.StatusCreated)
	return resp, ocispec.Descriptor{MediaType: mt.MediaType, Digest: d, Size: int64(len(b))}, b
}

// image pushes a config and a layer to repo and returns an image manifest
// using them; seed makes distinct images.
func (r *reg) image(repo, seed string) ocispec.Manifest {
	r.t.Helper()
	cfg := r.pushBlob(repo, ocispec.MediaTypeImageConfig, []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"seed":"`+seed+`"}`))
	layer := r.pushBlob(repo, ocispec.MediaTypeImageLayer, []byte("layer bytes of "+seed))
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{layer}}
	m.SchemaVersion = 2
	return m
}

// artifact returns an artifact manifest (empty config) referring to subject.
func (r *reg) artifact(repo, artifactType string, subject *ocispec.Descriptor, annotations map[string]string) ocispec.Manifest {
	r.t.Helper()
	cfg := r.pushBlob(repo, ocispec.MediaTypeEmptyJSON, []byte("{}"))
	m := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType,
		Config:       cfg,
		Layers:       []ocispec.Descriptor{cfg},
		Subject:      subject,
		Annotations:  annotations,
	}
	m.SchemaVersion = 2
	return m
}

func TestPull(t *testing.T) {
	storages(t, func(t *testing.T, opts ...server.Option) {
		r := newReg(t, opts...)
		img := r.image("pull/app", "pull")
		_, desc := r.pushManifest("pull/app", "v1", img)
		manifest, _ := json.Marshal(img)

		// "GET /v2/<name>/manifests/<reference>" by tag and by digest: 200,
		// the bytes pushed, Content-Type of the manifest.
		for _, ref := range []string{"v1", desc.Digest.String()} {
			resp, body := r.do(http.MethodGet, "/v2/pull/app/manifests/"+ref, nil, "Accept", ocispec.MediaTypeImageManifest)
			r.want(resp, body, http.StatusOK)
			if !bytes.Equal(body, manifest) {
				t.Errorf("GET manifest %s: body differs from the pushed manifest", ref)
			}
			if ct := resp.Header.Get("Content-Type"); ct != ocispec.MediaTypeImageManifest {
				t.Errorf("GET manifest %s: Content-Type %q", ref, ct)
			}
			if dh := resp.Header.Get("Docker-Content-Digest"); dh != desc.Digest.String() {
				t.Errorf("GET manifest %s: Docker-Content-Digest %q, want %s", ref, dh, desc.Digest)
			}
			// HEAD: same status and headers, no body.
			resp, body = r.do(http.MethodHead, "/v2/pull/app/manifests/"+ref, nil, "Accept", ocispec.MediaTypeImageManifest)
			r.want(resp, body, http.StatusOK)
			if len(body) != 0 || resp.ContentLength != desc.Size {
				t.Errorf("HEAD manifest %s: %d body bytes, Content-Length %d, want 0 and %d", ref, len(body), resp.ContentLength, desc.Size)
			}
		}
		// "If the manifest is not found in the repository, the response code
		// MUST be 404 Not Found."
		resp, body := r.do(http.MethodGet, "/v2/pull/app/manifests/nope", nil)
		r.wantError(resp, body, http.StatusNotFound, "MANIFEST_UNKNOWN")
		resp, body = r.do(http.MethodHead, "/v2/pull/app/manifests/"+digest.FromString("x").String(), nil)
		r.want(resp, body, http.StatusNotFound)

		// Blobs: GET returns the bytes, HEAD the size, a missing one 404.
		layer := img.Layers[0]
		resp, body = r.do(http.MethodGet, "/v2/pull/app/blobs/"+layer.Digest.String(), nil)
		r.want(resp, body, http.StatusOK)
		if digest.FromBytes(body) != layer.Digest {
			t.Errorf("GET blob: body does not hash to %s", layer.Digest)
		}
		resp, body = r.do(http.MethodHead, "/v2/pull/app/blobs/"+layer.Digest.String(), nil)
		r.want(resp, body, http.StatusOK)
		if resp.ContentLength != layer.Size || len(body) != 0 {
			t.Errorf("HEAD blob: Content-Length %d and %d body bytes, want %d and 0", resp.ContentLength, len(body), layer.Size)
		}
		resp, body = r.do(http.MethodGet, "/v2/pull/app/blobs/"+digest.FromString("missing").String(), nil)
		r.wantError(resp, body, http.StatusNotFound, "BLOB_UNKNOWN")

		// Range requests ("A registry SHOULD support the Range request header").
		resp, body = r.do(http.MethodGet, "/v2/pull/app/blobs/"+layer.Digest.String(), nil, "Range", "bytes=6-10")
		r.want(resp, body, http.StatusPartialContent)
		if string(body) != "bytes" {
			t.Errorf("GET blob with Range bytes=6-10: %q, want %q", body, "bytes")
		}
	})
}

func TestPushMonolithic(t *testing.T) {
	r := newReg(t)
	data := []byte("monolithic blob")
	d := digest.FromBytes(data)

	// POST opens a session: 202 with a Location.
	resp, body := r.do(http.MethodPost, "/v2/push/mono/blobs/uploads/", nil)
	r.want(resp, body, http.StatusAccepted)
	loc := r.location(resp)
	// A PUT with the wrong digest is refused with DIGEST_INVALID.
	resp, body = r.do(http.MethodPut, withQuery(loc, "digest", digest.FromString("other").String()), data)
	r.wantError(resp, body, http.StatusBadRequest, "DIGEST_INVALID")

	// PUT with the right digest: 201 and a Location of the blob.
	resp, body = r.do(http.MethodPost, "/v2/push/mono/blobs/uploads/", nil)
	r.want(resp, body, http.StatusAccepted)
	resp, body = r.do(http.MethodPut, withQuery(r.location(resp), "digest", d.String()), data,
		"Content-Type", "application/octet-stream")
	r.want(resp, body, http.StatusCreated)
	if !strings.HasSuffix(r.location(resp), "/v2/push/mono/blobs/"+d.String()) {
		t.Errorf("blob PUT Location %q does not name the blob", resp.Header.Get("Location"))
	}
	r.wantBlob("push/mono", data)
}

func TestPushChunked(t *testing.T) {
	r := newReg(t)
	data := []byte("first chunk|second chunk")
	d := digest.FromBytes(data)
	a, b := data[:12], data[12:]

	resp, body := r.do(http.MethodPost, "/v2/push/chunked/blobs/uploads/", nil, "Content-Length", "0")
	r.want(resp, body, http.StatusAccepted)
	resp, body = r.do(http.MethodPatch, r.location(resp), a,
		"Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("0-%d", len(a)-1))
	// "Each successful chunk upload MUST have a 202 Accepted response code",
	// and a Range header of the bytes received so far.
	r.want(resp, body, http.StatusAccepted)
	if got, want := resp.Header.Get("Range"), fmt.Sprintf("0-%d", len(a)-1); got != want {
		t.Errorf("after the first chunk Range is %q, want %q", got, want)
	}
	loc := r.location(resp)

	// "If a chunk is uploaded out of order, the registry MUST respond with a
	// 416 Requested Range Not Satisfiable."
	resp, body = r.do(http.MethodPatch, loc, b,
		"Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("%d-%d", len(a)+1, len(data)))
	r.want(resp, body, http.StatusRequestedRangeNotSatisfiable)

	// GET on the session reports progress with 204 and Range.
	resp, body = r.do(http.MethodGet, loc, nil)
	r.want(resp, body, http.StatusNoContent)
	if got, want := resp.Header.Get("Range"), fmt.Sprintf("0-%d", len(a)-1); got != want {
		t.Errorf("upload status Range %q, want %q", got, want)
	}

	resp, body = r.do(http.MethodPatch, loc, b,
		"Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("%d-%d", len(a), len(data)-1))
	r.want(resp, body, http.StatusAccepted)
	// The closing PUT may carry no body.
	resp, body = r.do(http.MethodPut, withQuery(r.location(resp), "digest", d.String()), nil)
	r.want(resp, body, http.StatusCreated)
	r.wantBlob("push/chunked", data)
}

func TestPushCrossMount(t *testing.T) {
	r := newReg(t)
	src := r.pushBlob("mount/src", ocispec.MediaTypeImageLayer, []byte("shared layer"))

	// "If the registry supports cross-repository mounting and the blob
	// exists in the from repository, the registry MUST return 201 Created."
	resp, body := r.do(http.MethodPost, "/v2/mount/dst/blobs/uploads/?mount="+src.Digest.String()+"&from=mount/src", nil)
	r.want(resp, body, http.StatusCreated)
	if !strings.HasSuffix(r.location(resp), "/v2/mount/dst/blobs/"+src.Digest.String()) {
		t.Errorf("mount Location %q does not name the mounted blob", resp.Header.Get("Location"))
	}
	resp, body = r.do(http.MethodHead, "/v2/mount/dst/blobs/"+src.Digest.String(), nil)
	r.want(resp, body, http.StatusOK)

	// A blob the source does not have: fall back to an upload session, 202.
	missing := digest.FromString("not there")
	resp, body = r.do(http.MethodPost, "/v2/mount/dst/blobs/uploads/?mount="+missing.String()+"&from=mount/src", nil)
	r.want(resp, body, http.StatusAccepted)
	r.location(resp)
}

func TestNondistributableLayer(t *testing.T) {
	r := newReg(t)
	img := r.image("nd/app", "nd")
	// A layer that is never pushed, reachable at an https URL (the default
	// allow list is ^https://).
	foreign := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayerNonDistributableGzip, //nolint:staticcheck // the suite pushes it
		Digest:    digest.FromString("foreign layer"),
		Size:      13,
		URLs:      []string{"https://store.example.com/blobs/sha256/" + digest.FromString("foreign layer").Encoded()},
	}
	img.Layers = append(img.Layers, foreign)
	_, desc := r.pushManifest("nd/app", "win", img)
	resp, body := r.do(http.MethodGet, "/v2/nd/app/manifests/"+desc.Digest.String(), nil, "Accept", ocispec.MediaTypeImageManifest)
	r.want(resp, body, http.StatusOK)
	// The foreign layer itself is not served.
	resp, body = r.do(http.MethodHead, "/v2/nd/app/blobs/"+foreign.Digest.String(), nil)
	r.want(resp, body, http.StatusNotFound)

	// An http URL is outside the default allow list: refused with 400
	// MANIFEST_INVALID naming the layer, the URL and the rule (distribution
	// alone answers 500 UNKNOWN, which clients retry as a server failure).
	img.Layers[1].URLs = []string{"http://store.example.com/layer"}
	b, _ := json.Marshal(img)
	resp, body = r.do(http.MethodPut, "/v2/nd/app/manifests/plain", b, "Content-Type", ocispec.MediaTypeImageManifest)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "MANIFEST_INVALID") {
		t.Errorf("manifest with an http foreign URL: status %d, body %s; want 400 MANIFEST_INVALID", resp.StatusCode, body)
	}
	for _, want := range []string{foreign.Digest.String(), "http://store.example.com/layer", "^https://"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("refusal %s does not name %s", body, want)
		}
	}
	resp, body = r.do(http.MethodHead, "/v2/nd/app/manifests/plain", nil)
	r.want(resp, body, http.StatusNotFound)
}

func TestTagsListPagination(t *testing.T) {
	r := newReg(t)
	img := r.image("tags/app", "tags")
	want := []string{"a", "b", "c", "d", "e"}
	for _, tag := range want {
		r.pushManifest("tags/app", tag, img)
	}
	type tagList struct {
		Name string
		Tags []string
	}
	list := func(path string) (tagList, string) {
		t.Helper()
		resp, body := r.do(http.MethodGet, path, nil)
		r.want(resp, body, http.StatusOK)
		var tl tagList
		if err := json.Unmarshal(body, &tl); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return tl, resp.Header.Get("Link")
	}

	// All tags, in lexical order.
	all, _ := list("/v2/tags/app/tags/list")
	if all.Name != "tags/app" || !slices.Equal(all.Tags, want) {
		t.Errorf("tags list = %+v, want name tags/app and %v", all, want)
	}
	// "n": at most n tags, and a Link rel="next" header while more remain;
	// following the links yields every tag once.
	var got []string
	path := "/v2/tags/app/tags/list?n=2"
	for i := 0; path != "" && i < 10; i++ {
		page, link := list(path)
		if len(page.Tags) > 2 {
			t.Fatalf("page %d has %d tags, more than n=2", i, len(page.Tags))
		}
		got = append(got, page.Tags...)
		path = ""
		if link != "" {
			if !strings.Contains(link, `rel="next"`) {
				t.Fatalf("Link header %q lacks rel=\"next\"", link)
			}
			path = strings.TrimSuffix(strings.TrimPrefix(strings.SplitN(link, ";", 2)[0], "<"), ">")
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("paginated tags %v, want %v", got, want)
	}
	// "last": tags lexically after it.
	after, _ := list("/v2/tags/app/tags/list?n=2&last=b")
	if !slices.Equal(after.Tags, []string{"c", "d"}) {
		t.Errorf("tags after b with n=2: %v, want [c d]", after.Tags)
	}
}

// referrers fetches the referrers list, checking what every answer must have.
func (r *reg) referrers(repo string, subject digest.Digest, artifactType string) (ocispec.Index, *http.Response) {
	r.t.Helper()
	path := "/v2/" + repo + "/referrers/" + subject.String()
	if artifactType != "" {
		path = withQuery(path, "artifactType", artifactType)
	}
	resp, body := r.do(http.MethodGet, path, nil)
	r.want(resp, body, http.StatusOK)
	if ct := resp.Header.Get("Content-Type"); ct != ocispec.MediaTypeImageIndex {
		r.t.Errorf("referrers Content-Type %q, want %s", ct, ocispec.MediaTypeImageIndex)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(body, &idx); err != nil {
		r.t.Fatalf("referrers body %s: %v", body, err)
	}
	if idx.SchemaVersion != 2 || idx.MediaType != ocispec.MediaTypeImageIndex || idx.Manifests == nil {
		r.t.Errorf("referrers body %s is not an image index with a manifests list", body)
	}
	return idx, resp
}

// sameDescriptors compares by digest, media type, size, artifactType and
// annotations, ignoring order.
func sameDescriptors(got, want []ocispec.Descriptor) bool {
	key := func(d ocispec.Descriptor) string {
		a, _ := json.Marshal(d.Annotations)
		return strings.Join([]string{d.Digest.String(), d.MediaType, fmt.Sprint(d.Size), d.ArtifactType, string(a)}, " ")
	}
	g, w := make([]string, len(got)), make([]string, len(want))
	for i := range got {
		g[i] = key(got[i])
	}
	for i := range want {
		w[i] = key(want[i])
	}
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

func TestReferrers(t *testing.T) {
	storages(t, func(t *testing.T, opts ...server.Option) {
		r := newReg(t, opts...)
		const repo = "refs/app"
		_, subject := r.pushManifest(repo, "v1", r.image(repo, "subject"))

		// An artifact with an artifactType and annotations, pushed by digest:
		// "MUST respond with the response header OCI-Subject: <subject digest>".
		sig := r.artifact(repo, "application/vnd.example.signature.v1", &subject, map[string]string{"org.example.k": "v"})
		resp, sigDesc := r.pushManifest(repo, "", sig)
		if got := resp.Header.Get("OCI-Subject"); got != subject.Digest.String() {
			t.Errorf("push by digest: OCI-Subject %q, want %s", got, subject.Digest)
		}
		sigDesc.ArtifactType = sig.ArtifactType
		sigDesc.Annotations = sig.Annotations

		// An image with a subject but no artifactType, pushed by tag: its
		// descriptor takes the config media type.
		sbom := r.image(repo, "sbom")
		sbom.Subject = &subject
		resp, sbomDesc := r.pushManifest(repo, "sbom", sbom)
		if got := resp.Header.Get("OCI-Subject"); got != subject.Digest.String() {
			t.Errorf("push by tag: OCI-Subject %q, want %s", got, subject.Digest)
		}
		sbomDesc.ArtifactType = ocispec.MediaTypeImageConfig

		// An index with a subject and no artifactType: artifactType omitted.
		idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{sigDesc}, Subject: &subject,
			Annotations: map[string]string{"org.example.index": "yes"}}
		idx.SchemaVersion = 2
		resp, idxDesc := r.pushManifest(repo, "", idx)
		if got := resp.Header.Get("OCI-Subject"); got != subject.Digest.String() {
			t.Errorf("index push: OCI-Subject %q, want %s", got, subject.Digest)
		}
		idxDesc.Annotations = idx.Annotations

		// Without a subject there is no OCI-Subject header, and the manifest
		// is nobody's referrer.
		resp, _ = r.pushManifest(repo, "plain", r.image(repo, "plain"))
		if got := resp.Header.Get("OCI-Subject"); got != "" {
			t.Errorf("push without subject: OCI-Subject %q", got)
		}
		// A referrer in another repository is not listed here.
		r.pushManifest("refs/other", "", r.artifact("refs/other", "application/vnd.example.signature.v1", &subject, nil))

		list, resp := r.referrers(repo, subject.Digest, "")
		if !sameDescriptors(list.Manifests, []ocispec.Descriptor{sigDesc, sbomDesc, idxDesc}) {
			t.Errorf("referrers = %+v, want the signature, the sbom and the index", list.Manifests)
		}
		if got := resp.Header.Get("OCI-Filters-Applied"); got != "" {
			t.Errorf("unfiltered request: OCI-Filters-Applied %q", got)
		}
		for _, d := range list.Manifests {
			if d.Digest == idxDesc.Digest && d.ArtifactType != "" {
				t.Errorf("index without artifactType listed with artifactType %q", d.ArtifactType)
			}
		}

		// "?artifactType=": only matching descriptors, and the header
		// "OCI-Filters-Applied: artifactType".
		list, resp = r.referrers(repo, subject.Digest, sig.ArtifactType)
		if !sameDescriptors(list.Manifests, []ocispec.Descriptor{sigDesc}) {
			t.Errorf("filtered referrers = %+v, want only the signature", list.Manifests)
		}
		if got := resp.Header.Get("OCI-Filters-Applied"); got != "artifactType" {
			t.Errorf("filtered request: OCI-Filters-Applied %q, want artifactType", got)
		}
		list, _ = r.referrers(repo, subject.Digest, "application/vnd.example.none")
		if len(list.Manifests) != 0 {
			t.Errorf("filter matching nothing: %+v", list.Manifests)
		}

		// "If a query results in no matching referrers, an empty manifest
		// list MUST be returned", also for a repository never pushed to: the
		// spec forbids a 404 from a registry with the API.
		for _, rp := range []string{repo, "refs/never"} {
			if list, _ := r.referrers(rp, digest.FromString("nothing refers to me"), ""); len(list.Manifests) != 0 {
				t.Errorf("%s: referrers of an unknown digest: %+v", rp, list.Manifests)
			}
		}
		// "If the request is invalid, such as a <digest> with an invalid
		// syntax, a 400 Bad Request MUST be returned."
		resp, body := r.do(http.MethodGet, "/v2/"+repo+"/referrers/sha256:nothex", nil)
		r.wantError(resp, body, http.StatusBadRequest, "DIGEST_INVALID")

		// After a delete the referrer is gone, the others stay.
		resp, body = r.do(http.MethodDelete, "/v2/"+repo+"/manifests/"+sigDesc.Digest.String(), nil)
		r.want(resp, body, http.StatusAccepted)
		list, _ = r.referrers(repo, subject.Digest, "")
		if !sameDescriptors(list.Manifests, []ocispec.Descriptor{sbomDesc, idxDesc}) {
			t.Errorf("referrers after deleting the signature = %+v", list.Manifests)
		}
	})
}

func TestReferrersBeforeSubject(t *testing.T) {
	// "A registry MUST initially accept an otherwise valid manifest with a
	// subject field that references a manifest that does not exist."
	r := newReg(t)
	subject := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("later"), Size: 5}
	resp, desc := r.pushManifest("refs/early", "", r.artifact("refs/early", "application/vnd.example.a", &subject, nil))
	if got := resp.Header.Get("OCI-Subject"); got != subject.Digest.String() {
		t.Errorf("OCI-Subject %q, want %s", got, subject.Digest)
	}
	desc.ArtifactType = "application/vnd.example.a"
	if list, _ := r.referrers("refs/early", subject.Digest, ""); !sameDescriptors(list.Manifests, []ocispec.Descriptor{desc}) {
		t.Errorf("referrers of a missing subject = %+v, want the artifact", list.Manifests)
	}
}

func TestReferrersSurviveRestart(t *testing.T) {
	root := t.TempDir()
	r := newReg(t, server.WithRoot(root))
	_, subject := r.pushManifest("refs/disk", "v1", r.image("refs/disk", "disk"))
	_, desc := r.pushManifest("refs/disk", "", r.artifact("refs/disk", "application/vnd.example.b", &subject, nil))
	desc.ArtifactType = "application/vnd.example.b"

	r2 := newReg(t, server.WithRoot(root))
	if list, _ := r2.referrers("refs/disk", subject.Digest, ""); !sameDescriptors(list.Manifests, []ocispec.Descriptor{desc}) {
		t.Errorf("referrers from a second server on the same root = %+v", list.Manifests)
	}
}

func TestReferrersRequireAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(file, []byte("alice:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newReg(t, server.WithHTPasswd(file))
	path := "/v2/private/app/referrers/" + digest.FromString("s").String()
	resp, body := r.do(http.MethodGet, path, nil)
	r.wantError(resp, body, http.StatusUnauthorized, "UNAUTHORIZED")
	if resp.Header.Get("WWW-Authenticate") == "" {
		t.Error("401 without a WWW-Authenticate challenge")
	}
	// Anonymous manifest pushes are refused as before.
	resp, body = r.do(http.MethodPut, "/v2/private/app/manifests/v1", []byte("{}"), "Content-Type", ocispec.MediaTypeImageManifest)
	r.wantError(resp, body, http.StatusUnauthorized, "UNAUTHORIZED")

	r.user, r.pass = "alice", "pw"
	r.referrers("private/app", digest.FromString("s"), "")
	_, subject := r.pushManifest("private/app", "v1", r.image("private/app", "private"))
	resp, _ = r.pushManifest("private/app", "", r.artifact("private/app", "application/vnd.example.c", &subject, nil))
	if got := resp.Header.Get("OCI-Subject"); got != subject.Digest.String() {
		t.Errorf("authenticated push: OCI-Subject %q, want %s", got, subject.Digest)
	}
	if list, _ := r.referrers("private/app", subject.Digest, ""); len(list.Manifests) != 1 {
		t.Errorf("authenticated referrers: %+v, want the one artifact", list.Manifests)
	}
}

func TestContentManagement(t *testing.T) {
	storages(t, func(t *testing.T, opts ...server.Option) {
		r := newReg(t, opts...)
		const repo = "manage/app"
		img := r.image(repo, "manage")
		_, desc := r.pushManifest(repo, "keep", img)
		r.pushManifest(repo, "drop", img)

		// Deleting a tag: "DELETE /v2/<name>/manifests/<tag>" → 202; the tag
		// is gone, the manifest stays reachable by digest and other tags.
		resp, body := r.do(http.MethodDelete, "/v2/"+repo+"/manifests/drop", nil)
		r.want(resp, body, http.StatusAccepted)
		resp, body = r.do(http.MethodGet, "/v2/"+repo+"/manifests/drop", nil)
		r.want(resp, body, http.StatusNotFound)
		resp, body = r.do(http.MethodGet, "/v2/"+repo+"/tags/list", nil)
		r.want(resp, body, http.StatusOK)
		if strings.Contains(string(body), `"drop"`) || !strings.Contains(string(body), `"keep"`) {
			t.Errorf("tags after deleting drop: %s", body)
		}
		resp, body = r.do(http.MethodHead, "/v2/"+repo+"/manifests/"+desc.Digest.String(), nil, "Accept", ocispec.MediaTypeImageManifest)
		r.want(resp, body, http.StatusOK)

		// Deleting a manifest by digest → 202, then 404 by digest and by tag.
		resp, body = r.do(http.MethodDelete, "/v2/"+repo+"/manifests/"+desc.Digest.String(), nil)
		r.want(resp, body, http.StatusAccepted)
		for _, ref := range []string{desc.Digest.String(), "keep"} {
			resp, body = r.do(http.MethodGet, "/v2/"+repo+"/manifests/"+ref, nil)
			r.want(resp, body, http.StatusNotFound)
		}

		// Deleting a blob → 202, then 404; deleting it again → 404.
		layer := img.Layers[0].Digest.String()
		resp, body = r.do(http.MethodDelete, "/v2/"+repo+"/blobs/"+layer, nil)
		r.want(resp, body, http.StatusAccepted)
		resp, body = r.do(http.MethodGet, "/v2/"+repo+"/blobs/"+layer, nil)
		r.want(resp, body, http.StatusNotFound)
		resp, body = r.do(http.MethodDelete, "/v2/"+repo+"/blobs/"+layer, nil)
		r.wantError(resp, body, http.StatusNotFound, "BLOB_UNKNOWN")
	})
}

func TestDeleteDisabledByDefault(t *testing.T) {
	r := newReg(t)
	img := r.image("nodelete/app", "nodelete")
	_, desc := r.pushManifest("nodelete/app", "v1", img)
	// "If manifest/blob deletion is disabled, the registry MUST respond
	// with either a 400 Bad Request or a 405 Method Not Allowed."
	for _, path := range []string{"/manifests/" + desc.Digest.String(), "/blobs/" + img.Layers[0].Digest.String()} {
		resp, body := r.do(http.MethodDelete, "/v2/nodelete/app"+path, nil)
		if resp.StatusCode != http.StatusMethodNotAllowed && resp.StatusCode != http.StatusBadRequest {
			t.Errorf("DELETE %s with deletes disabled: status %d, body %s", path, resp.StatusCode, body)
		}
	}
	resp, body := r.do(http.MethodHead, "/v2/nodelete/app/manifests/v1", nil, "Accept", ocispec.MediaTypeImageManifest)
	r.want(resp, body, http.StatusOK)
}

// TestReferrersBesideLegacyManifest: a schema1 manifest in the repository
// (written by an old registry on the same root) has no subject; it does not
// make the referrers API fail. An OCI manifest whose body omits mediaType is
// still read as one.
func TestReferrersBesideLegacyManifest(t *testing.T) {
	root := t.TempDir()
	r := newReg(t, server.WithRoot(root))
	const repo = "refs/legacy"
	_, subject := r.pushManifest(repo, "v1", r.image(repo, "legacy"))
	_, desc := r.pushManifest(repo, "", r.artifact(repo, "application/vnd.example.c", &subject, nil))
	desc.ArtifactType = "application/vnd.example.c"
	bare := r.artifact(repo, "application/vnd.example.d", &subject, nil)
	bare.MediaType = ""
	b, _ := json.Marshal(bare)
	resp, body := r.do(http.MethodPut, "/v2/"+repo+"/manifests/"+digest.FromBytes(b).String(), b, "Content-Type", ocispec.MediaTypeImageManifest)
	r.want(resp, body, http.StatusCreated)
	bareDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(b), Size: int64(len(b)), ArtifactType: "application/vnd.example.d"}

	// A schema1 manifest placed as docker/registry stored them: its blob
	// and a revision link in the repository.
	legacy := []byte(`{"schemaVersion":1,"name":"refs/legacy","tag":"old","architecture":"amd64","fsLayers":[],"history":[],"signatures":[]}`)
	ld := digest.FromBytes(legacy)
	v2 := filepath.Join(root, "docker", "registry", "v2")
	data := filepath.Join(v2, "blobs", "sha256", ld.Encoded()[:2], ld.Encoded(), "data")
	link := filepath.Join(v2, "repositories", repo, "_manifests", "revisions", "sha256", ld.Encoded(), "link")
	for p, content := range map[string][]byte{data: legacy, link: []byte(ld.String())} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ { // the second time from the cache
		if list, _ := r.referrers(repo, subject.Digest, ""); !sameDescriptors(list.Manifests, []ocispec.Descriptor{desc, bareDesc}) {
			t.Errorf("referrers beside a schema1 manifest = %+v", list.Manifests)
		}
	}
}

// TestOCISubjectWithContentTypeParameters: a manifest without mediaType in
// its body, pushed with a Content-Type carrying parameters, is read as
// distribution reads it (parameters aside), so its subject is answered.
func TestOCISubjectWithContentTypeParameters(t *testing.T) {
	r := newReg(t)
	const repo = "refs/params"
	_, subject := r.pushManifest(repo, "v1", r.image(repo, "subject"))
	sig := r.artifact(repo, "application/vnd.example.signature.v1", &subject, nil)
	sig.MediaType = ""
	b, err := json.Marshal(sig)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := r.do(http.MethodPut, "/v2/"+repo+"/manifests/"+digest.FromBytes(b).String(), b, "Content-Type", ocispec.MediaTypeImageManifest+"; charset=utf-8")
	r.want(resp, body, http.StatusCreated)
	if got := resp.Header.Get("OCI-Subject"); got != subject.Digest.String() {
		t.Errorf("OCI-Subject %q, want %s", got, subject.Digest)
	}
}
