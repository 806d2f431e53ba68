package regroot

// A root written by ferry serve with content pushed by sha512 digests
// (alias links, internal/regstorage/aliaslinks): fsck finds it sound and
// still finds a wrong alias, gc keeps what is referenced by sha512 and
// removes alias links with what it removes, and referrers of a subject
// deleted through the API go at the next gc.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-dev/ferry/server"
)

// served is a ferry serve handler on a root, spoken to over HTTP.
type served struct {
	t   *testing.T
	url string
	dir string
}

func serveRoot(t *testing.T) *served {
	t.Helper()
	_, dir := emptyRoot(t)
	h, err := server.NewHandler(context.Background(), server.WithRoot(dir), server.WithDelete(true))
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return &served{t: t, url: s.URL, dir: dir}
}

func (s *served) do(method, path string, body []byte, wantCode int, header ...string) *http.Response {
	s.t.Helper()
	if !strings.HasPrefix(path, "http") {
		path = s.url + path
	}
	req, err := http.NewRequest(method, path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest+", "+ocispec.MediaTypeImageIndex)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != wantCode {
		s.t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, wantCode, b)
	}
	return resp
}

// blob uploads content to repo by its sha512 digest.
func (s *served) blob(repo, mediaType, content string) ocispec.Descriptor {
	s.t.Helper()
	d := digest.SHA512.FromString(content)
	resp := s.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, http.StatusAccepted)
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil {
		s.t.Fatal(err)
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	s.do(http.MethodPut, loc.String(), []byte(content), http.StatusCreated)
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(content))}
}

// manifest pushes m to repo by its sha512 digest, tagged by the tags.
func (s *served) manifest(repo string, m any, tags ...string) ocispec.Descriptor {
	s.t.Helper()
	raw, err := json.Marshal(m)
	if err != nil {
		s.t.Fatal(err)
	}
	var mt struct{ MediaType string }
	_ = json.Unmarshal(raw, &mt)
	d := digest.SHA512.FromBytes(raw)
	q := ""
	for i, t := range tags {
		q += map[bool]string{true: "?", false: "&"}[i == 0] + "tag=" + t
	}
	s.do(http.MethodPut, "/v2/"+repo+"/manifests/"+d.String()+q, raw, http.StatusCreated, "Content-Type", mt.MediaType)
	return ocispec.Descriptor{MediaType: mt.MediaType, Digest: d, Size: int64(len(raw))}
}

// image pushes an image by sha512 digests, with a subject when given.
func (s *served) image(repo, seed string, subject *ocispec.Descriptor, tags ...string) ocispec.Descriptor {
	s.t.Helper()
	m := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    s.blob(repo, ocispec.MediaTypeImageConfig, `{"seed":"`+seed+`"}`),
		Layers:    []ocispec.Descriptor{s.blob(repo, ocispec.MediaTypeImageLayer, "layer of "+seed)},
		Subject:   subject,
	}
	m.SchemaVersion = 2
	return s.manifest(repo, m, tags...)
}

func (s *served) fsck() *Report {
	s.t.Helper()
	rep, err := Fsck(context.Background(), s.dir)
	if err != nil {
		s.t.Fatal(err)
	}
	return rep
}

func (s *served) gc() *GCReport {
	s.t.Helper()
	root, err := Open(context.Background(), s.dir)
	if err != nil {
		s.t.Fatal(err)
	}
	defer root.Close()
	rep, err := root.GC(context.Background())
	if err != nil {
		s.t.Fatalf("gc: %v", err)
	}
	return rep
}

// link is the OS path of a link file in the root.
func (s *served) link(repo, kind string, d digest.Digest) string {
	return filepath.Join(s.dir, filepath.FromSlash(DataDir), "repositories", filepath.FromSlash(repo), kind, d.Algorithm().String(), d.Encoded(), "link")
}

func TestFsckAliasLinks(t *testing.T) {
	s := serveRoot(t)
	img := s.image("alias/app", "one", nil)
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{img}}
	idx.SchemaVersion = 2
	s.manifest("alias/app", idx, "v1")
	// A mount by sha512 into another repository.
	layer := digest.SHA512.FromString("layer of one")
	s.do(http.MethodPost, "/v2/alias/other/blobs/uploads/?mount="+layer.String()+"&from=alias/app", nil, http.StatusCreated)

	if rep := s.fsck(); !rep.OK() || rep.Tags != 1 || rep.Repositories != 2 {
		t.Fatalf("fsck after sha512 uploads, a mount and manifests by sha512: %+v", rep)
	}

	// An alias whose blob does not hash to it: the layer's sha512 name
	// linked to the config's blob.
	cfg := digest.FromString(`{"seed":"one"}`)
	if err := os.WriteFile(s.link("alias/other", "_layers", layer), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// An alias linked to itself, as distribution's own mount by sha512
	// writes it: a link to nothing.
	self := digest.SHA512.FromString(`{"seed":"one"}`)
	bad := s.link("alias/other", "_layers", self)
	if err := os.MkdirAll(filepath.Dir(bad), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(self), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := s.fsck()
	var sawWrong, sawSelf bool
	for _, p := range rep.Problems {
		sawWrong = sawWrong || (strings.Contains(p.Path, layer.Encoded()) && strings.Contains(p.What, "does not hash to"))
		sawSelf = sawSelf || (strings.Contains(p.Path, self.Encoded()) && strings.Contains(p.What, "missing blob"))
	}
	if !sawWrong || !sawSelf || len(rep.Problems) != 2 {
		t.Errorf("problems %+v: want the wrong alias and the link to nothing", rep.Problems)
	}
}

func TestGCAliasLinks(t *testing.T) {
	s := serveRoot(t)
	img := s.image("alias/app", "kept", nil, "v1")
	gone := s.image("alias/app", "gone", nil, "v2")
	// An unreferenced blob uploaded by sha512: two layer links, one blob.
	loose := s.blob("alias/app", ocispec.MediaTypeImageLayer, "loose")

	rep := s.gc()
	if len(rep.Blobs) != 1 || rep.Blobs[0].Digest != digest.FromString("loose").String() {
		t.Errorf("gc removed %+v, want only the loose blob", rep.Blobs)
	}
	if f := s.fsck(); !f.OK() || f.Tags != 2 {
		t.Fatalf("fsck after gc: %+v", f)
	}
	s.do(http.MethodHead, "/v2/alias/app/manifests/"+img.Digest.String(), nil, http.StatusOK)
	s.do(http.MethodHead, "/v2/alias/app/blobs/"+loose.Digest.String(), nil, http.StatusNotFound)

	// Deleting an image by sha512 and collecting: its blobs and every
	// alias go, and the root stays sound.
	s.do(http.MethodDelete, "/v2/alias/app/manifests/"+gone.Digest.String(), nil, http.StatusAccepted)
	rep = s.gc()
	if len(rep.Blobs) != 3 {
		t.Errorf("gc after deleting an image removed blobs %+v, want its manifest, config and layer", rep.Blobs)
	}
	if f := s.fsck(); !f.OK() || f.Tags != 1 {
		t.Fatalf("fsck after gc of a deleted image: %+v", f)
	}
	if _, err := os.Stat(s.link("alias/app", "_layers", digest.SHA512.FromString("layer of gone"))); !os.IsNotExist(err) {
		t.Errorf("the deleted image's layer alias is still there: %v", err)
	}
	s.do(http.MethodGet, "/v2/alias/app/manifests/v1", nil, http.StatusOK, "Accept", ocispec.MediaTypeImageManifest)
}

// The referrers policy: deleting a subject through the API leaves its
// referrers (listed under the subject's digest, pullable by digest) until
// the next gc, which removes them and what only they referenced; a
// referrer of a kept subject stays, tagged or not.
func TestGCReferrersOfDeletedSubject(t *testing.T) {
	s := serveRoot(t)
	subject := s.image("refs/app", "subject", nil, "v1")
	sig := s.image("refs/app", "signature", &subject)
	sigOfSig := s.image("refs/app", "signature of the signature", &sig)
	kept := s.image("refs/app", "kept", nil, "v2")
	keptSig := s.image("refs/app", "signature of kept", &kept)

	if rep := s.gc(); len(rep.Blobs) != 0 {
		t.Fatalf("gc with every subject present removed %+v", rep.Blobs)
	}
	s.do(http.MethodDelete, "/v2/refs/app/manifests/"+subject.Digest.String(), nil, http.StatusAccepted)
	// Kept until gc: listed and pullable.
	resp, err := http.Get(s.url + "/v2/refs/app/referrers/" + subject.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	var listed ocispec.Index
	err = json.NewDecoder(resp.Body).Decode(&listed)
	resp.Body.Close()
	if err != nil || len(listed.Manifests) != 1 {
		t.Errorf("referrers of the deleted subject: %+v, %v; want the signature, until gc", listed.Manifests, err)
	}
	s.do(http.MethodHead, "/v2/refs/app/manifests/"+sig.Digest.String(), nil, http.StatusOK)

	rep := s.gc()
	// subject, the two signatures: a manifest, config and layer each.
	if len(rep.Blobs) != 9 {
		t.Errorf("gc after deleting the subject removed %d blobs %+v, want 9", len(rep.Blobs), rep.Blobs)
	}
	for _, d := range []digest.Digest{sig.Digest, sigOfSig.Digest} {
		s.do(http.MethodHead, "/v2/refs/app/manifests/"+d.String(), nil, http.StatusNotFound)
	}
	s.do(http.MethodHead, "/v2/refs/app/manifests/"+keptSig.Digest.String(), nil, http.StatusOK)
	if f := s.fsck(); !f.OK() {
		t.Errorf("fsck after gc: %+v", f)
	}
}
