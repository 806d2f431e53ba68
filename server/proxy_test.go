package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/mediatype"
	"github.com/ferry-dev/ferry/server"
	"github.com/ferry-dev/ferry/store/regroot"
	"github.com/ferry-dev/ferry/version"
	"golang.org/x/crypto/bcrypt"
)

// allowLoopback lets the mirror fetch the fixture's foreign URLs.
const allowLoopback = `^http://127\.0\.0\.1:`

// startMirror starts a mirror on a fresh root (or root, when given).
func startMirror(t *testing.T, root string, opts ...server.Option) *server.Server {
	t.Helper()
	if root == "" {
		root = filepath.Join(t.TempDir(), "data")
	}
	s, err := server.Start(context.Background(), "127.0.0.1:0", append([]server.Option{server.WithRoot(root)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// get fetches path from base, accepting every manifest type, and returns
// the status, the body and the Docker-Content-Digest header.
func get(t *testing.T, method, base, path string) (int, []byte, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", strings.Join(mediatype.Manifests, ", "))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1, b, "" // cut short
	}
	return resp.StatusCode, b, resp.Header.Get("Docker-Content-Digest")
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// wantBlob GETs blob d of repo through base and checks its bytes.
func wantBlob(t *testing.T, base, repo string, d v1.Hash) {
	t.Helper()
	code, b, _ := get(t, http.MethodGet, base, "/v2/"+repo+"/blobs/"+d.String())
	switch {
	case code != http.StatusOK:
		t.Errorf("blob %s of %s: status %d: %.300s", d, repo, code, b)
	case sha(b) != d.String():
		t.Errorf("blob %s of %s: %d bytes hashing to %s", d, repo, len(b), sha(b))
	}
}

// pullAll reads everything fixture env holds through the mirror at base,
// with repository path repo, and checks digests and bytes.
func pullAll(t *testing.T, base, repo string, e *fixture.Env) {
	t.Helper()
	for _, c := range []struct{ ref, want string }{
		{fixture.IndexTag, e.Index.String()},
		{e.Index.String(), e.Index.String()},
		{fixture.SingleTag, e.SingleID.String()},
		{e.Manifests[1].String(), e.Manifests[1].String()},
	} {
		code, b, dg := get(t, http.MethodGet, base, "/v2/"+repo+"/manifests/"+c.ref)
		if code != http.StatusOK || sha(b) != c.want || dg != c.want {
			t.Errorf("manifest %s of %s: status %d, digest %s (header %s), want %s: %s", c.ref, repo, code, sha(b), dg, c.want, b)
		}
	}
	for _, d := range append(append(append([]v1.Hash{}, e.Configs...), e.Blobs...), e.Foreign...) {
		wantBlob(t, base, repo, d)
	}
}

// TestMirrorPullThrough: manifests, ordinary and foreign blobs come
// through the mirror with their upstream digests; the second pull is
// served from the cache; pushes are refused.
func TestMirrorPullThrough(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	m := startMirror(t, "", server.WithProxy(server.Upstream{URL: e.Reg.URL}), server.WithProxyForeignAllow(allowLoopback))
	pullAll(t, m.URL, fixture.Repo, e)
	var size int64
	for _, d := range e.Foreign {
		_, b, _ := get(t, http.MethodGet, e.URLs.URL, "/cdn/"+d.Hex)
		size += int64(len(b))
	}
	if got := e.URLs.BytesSent(); got != 2*size {
		t.Errorf("URL server sent %d bytes for foreign blobs of %d bytes in all (each once through the mirror, once here)", got, size)
	}
	regBefore, urlsBefore := e.Reg.Count("GET", "/blobs/"), e.URLs.Requests("")
	pullAll(t, m.URL, fixture.Repo, e)
	// By path prefix too: the same cache.
	pullAll(t, m.URL, "127.0.0.1_"+strings.Split(e.Reg.Host, ":")[1]+"/"+fixture.Repo, e)
	if e.Reg.Count("GET", "/blobs/") != regBefore || e.URLs.Requests("") != urlsBefore {
		t.Errorf("warm pulls fetched again: upstream blob GETs %d -> %d, URL requests %d -> %d", regBefore, e.Reg.Count("GET", "/blobs/"), urlsBefore, e.URLs.Requests(""))
	}
	resp, err := http.Post(m.URL+"/v2/pushed/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(string(b), "UNSUPPORTED") {
		t.Errorf("a push to the mirror: %d %s, want 405 UNSUPPORTED", resp.StatusCode, b)
	}
}

// TestMirrorConcurrentColdPulls: four clients pulling one cold image at
// once make one download per foreign blob.
func TestMirrorConcurrentColdPulls(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	var log lockedBuffer
	m := startMirror(t, "", server.WithProxy(server.Upstream{URL: e.Reg.URL}), server.WithProxyForeignAllow(allowLoopback), server.WithLog(&log, "warn"))
	defer func() {
		if t.Failed() {
			t.Logf("the mirror's log:\n%s", log.String())
		}
	}()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pullAll(t, m.URL, fixture.Repo, e)
		}()
	}
	wg.Wait()
	var size int64
	for i, d := range e.Foreign {
		fl, _ := fixture.Layers(t, e.Platform[i/2])
		size += fl[i%2].Size
		if n := e.URLs.Requests("/cdn/" + d.Hex); n != 1 {
			t.Errorf("foreign blob %s downloaded %d times", d, n)
		}
	}
	if got := e.URLs.BytesSent(); got != size {
		t.Errorf("URL server sent %d bytes, the foreign blobs have %d", got, size)
	}
}

// TestMirrorAirGap: with the upstream and the URL server gone, all that
// was pulled is served, also by a mirror restarted on the same root.
func TestMirrorAirGap(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	root := filepath.Join(t.TempDir(), "data")
	opts := []server.Option{server.WithProxy(server.Upstream{URL: e.Reg.URL}), server.WithProxyForeignAllow(allowLoopback), server.WithProxyTTL(0)}
	m := startMirror(t, root, opts...)
	pullAll(t, m.URL, fixture.Repo, e)
	e.Reg.Close()
	e.URLs.Close()
	pullAll(t, m.URL, fixture.Repo, e)
	// Not cached, upstream gone: unknown to the mirror (404), not a
	// server failure.
	for _, p := range []string{"/manifests/sha256:" + strings.Repeat("0", 64), "/blobs/sha256:" + strings.Repeat("0", 64)} {
		if code, b, _ := get(t, http.MethodGet, m.URL, "/v2/"+fixture.Repo+p); code != http.StatusNotFound || !strings.Contains(string(b), "_UNKNOWN") {
			t.Errorf("%s not cached, upstream gone: %d %s, want 404", p, code, b)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// What the mirror stored is a sound root, every blob linked where
	// distribution links a pushed one, with no upload left behind.
	rep, err := regroot.Fsck(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || len(rep.Uploads) != 0 || rep.Blobs < len(e.Blobs)+len(e.Foreign) {
		t.Errorf("storage fsck of the mirror's root: %d blobs, problems %v, uploads %v", rep.Blobs, rep.Problems, rep.Uploads)
	}
	if left, _ := filepath.Glob(filepath.Join(root, "docker", "registry", "v2", "repositories", "*", "*", "_uploads", "*")); len(left) != 0 {
		t.Errorf("upload directories left: %v", left)
	}
	m = startMirror(t, root, opts...)
	pullAll(t, m.URL, fixture.Repo, e)
	code, _, _ := get(t, http.MethodGet, m.URL, "/v2/"+fixture.Repo+"/manifests/never-pulled")
	if code != http.StatusNotFound {
		t.Errorf("a tag never pulled, upstream gone: status %d, want 404", code)
	}
}

// TestMirrorForeignPolicy: a URL the policy refuses is never contacted
// and the client gets 404 BLOB_UNKNOWN naming no URL; redirects to
// file:// or a private address are not followed; a corrupted response
// is not cached; a dropped connection resumes.
func TestMirrorForeignPolicy(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	t.Run("refused", func(t *testing.T) {
		m := startMirror(t, "", server.WithProxy(server.Upstream{URL: e.Reg.URL}))
		before := e.URLs.Requests("")
		code, b, _ := get(t, http.MethodGet, m.URL, "/v2/"+fixture.Repo+"/manifests/"+fixture.SingleTag)
		if code != http.StatusOK {
			t.Fatalf("manifest: %d %s", code, b)
		}
		code, b, _ = get(t, http.MethodGet, m.URL, "/v2/"+fixture.Repo+"/blobs/"+e.Foreign[0].String())
		if code != http.StatusNotFound || !strings.Contains(string(b), "BLOB_UNKNOWN") || strings.Contains(string(b), "127.0.0.1") || strings.Contains(string(b), "fwlink") {
			t.Errorf("refused foreign blob: status %d, body %s; want 404 BLOB_UNKNOWN naming no URL", code, b)
		}
		if n := e.URLs.Requests(""); n != before {
			t.Errorf("the URL server got %d requests for a URL the policy refuses", n-before)
		}
		wantBlob(t, m.URL, fixture.Repo, e.Blobs[0]) // the mirror goes on serving
	})
	t.Run("redirects", func(t *testing.T) {
		bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			to := map[string]string{"/file": "file:///etc/passwd", "/private": "http://10.255.255.1/blob"}[r.URL.Path]
			http.Redirect(w, r, to, http.StatusFound)
		}))
		defer bad.Close()
		reg := fixture.NewRegistry(t)
		var layers []v1.Hash
		img := empty.Image
		for i, p := range []string{"/file", "/private"} {
			l := static.NewLayer([]byte(fmt.Sprintf("foreign %d", i)), types.DockerForeignLayer)
			d, _ := l.Digest()
			layers = append(layers, d)
			var err error
			if img, err = mutate.Append(img, mutate.Addendum{Layer: l, URLs: []string{bad.URL + p}}); err != nil {
				t.Fatal(err)
			}
		}
		img = mutate.MediaType(img, types.DockerManifestSchema2)
		img = mutate.ConfigMediaType(img, types.DockerConfigJSON)
		reg.Push(t, "bad", "v1", img)
		m := startMirror(t, "", server.WithProxy(server.Upstream{URL: reg.URL}), server.WithProxyForeignAllow(`^`+strings.ReplaceAll(bad.URL, ".", `\.`)+`/`))
		if code, b, _ := get(t, http.MethodGet, m.URL, "/v2/bad/manifests/v1"); code != http.StatusOK {
			t.Fatalf("manifest: %d %s", code, b)
		}
		for _, d := range layers {
			if code, b, _ := get(t, http.MethodGet, m.URL, "/v2/bad/blobs/"+d.String()); code != http.StatusNotFound || strings.Contains(string(b), "passwd") || strings.Contains(string(b), "10.255") {
				t.Errorf("blob %s redirected away: status %d, body %s", d, code, b)
			}
		}
	})
	t.Run("corrupt", func(t *testing.T) {
		m := startMirror(t, "", server.WithProxy(server.Upstream{URL: e.Reg.URL}), server.WithProxyForeignAllow(allowLoopback))
		get(t, http.MethodGet, m.URL, "/v2/"+fixture.Repo+"/manifests/"+fixture.SingleTag)
		d := e.Foreign[1]
		e.URLs.Corrupt(d.Hex)
		for range 2 { // the second finds nothing cached either
			// Either cut short (the last byte is held back until the
			// blob is verified) or 404: never a whole 200 body.
			if code, b, _ := get(t, http.MethodGet, m.URL, "/v2/"+fixture.Repo+"/blobs/"+d.String()); code == http.StatusOK {
				t.Fatalf("a corrupted blob was served whole (%d bytes)", len(b))
			}
		}
		if code, _, _ := get(t, http.MethodHead, m.URL, "/v2/"+fixture.Repo+"/blobs/"+d.String()); code != http.StatusNotFound {
			t.Errorf("HEAD of a blob whose URL serves corrupt bytes: %d, want 404", code)
		}
		e.URLs.Heal(d.Hex)
		e.URLs.DropAfter(d.Hex, 3000)
		ranges := e.URLs.RangeRequests()
		wantBlob(t, m.URL, fixture.Repo, d)
		if e.URLs.RangeRequests() == ranges {
			t.Error("a dropped connection was not resumed with a Range request")
		}
	})
}

// TestMirrorUpstreams: two upstreams, named by ?ns= and by path prefix,
// cached separately; a name not configured is NAME_UNKNOWN.
func TestMirrorUpstreams(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	hub := fixture.NewRegistry(t)
	img, err := random.Image(300, 2)
	if err != nil {
		t.Fatal(err)
	}
	hubID := hub.Push(t, "library/alpine", "3", img)
	m := startMirror(t, "",
		server.WithProxy(server.Upstream{Name: "mcr.microsoft.com", URL: e.Reg.URL}, server.Upstream{Name: "docker.io", URL: hub.URL}),
		server.WithProxyForeignAllow(allowLoopback))
	pullAll(t, m.URL, "mcr.microsoft.com/"+fixture.Repo, e)
	for _, path := range []string{
		"/v2/" + fixture.Repo + "/manifests/" + fixture.IndexTag + "?ns=mcr.microsoft.com",
		"/v2/mcr.microsoft.com/" + fixture.Repo + "/manifests/" + fixture.IndexTag,
	} {
		if code, b, _ := get(t, http.MethodGet, m.URL, path); code != http.StatusOK || sha(b) != e.Index.String() {
			t.Errorf("%s: %d %s", path, code, b)
		}
	}
	for _, path := range []string{
		"/v2/library/alpine/manifests/3?ns=docker.io",
		"/v2/docker.io/alpine/manifests/3",
		"/v2/docker.io/library/alpine/manifests/3",
	} {
		if code, b, _ := get(t, http.MethodGet, m.URL, path); code != http.StatusOK || sha(b) != hubID.String() {
			t.Errorf("%s: %d %s", path, code, b)
		}
	}
	for _, path := range []string{
		"/v2/library/alpine/manifests/3?ns=quay.io",
		"/v2/quay.io/library/alpine/manifests/3",
		"/v2/library/alpine/manifests/3",
	} {
		if code, b, _ := get(t, http.MethodGet, m.URL, path); code != http.StatusNotFound || !strings.Contains(string(b), "NAME_UNKNOWN") {
			t.Errorf("%s: %d %s, want 404 NAME_UNKNOWN", path, code, b)
		}
	}
	// A tag list names the repository as the request did.
	for path, want := range map[string]string{
		"/v2/library/alpine/tags/list?ns=docker.io": "library/alpine",
		"/v2/docker.io/library/alpine/tags/list":    "docker.io/library/alpine",
	} {
		var list struct {
			Name string
			Tags []string
		}
		if code, b, _ := get(t, http.MethodGet, m.URL, path); code != http.StatusOK || json.Unmarshal(b, &list) != nil || list.Name != want || strings.Join(list.Tags, ",") != "3" {
			t.Errorf("%s: %d %s, want name %s and tag 3", path, code, b, want)
		}
	}
	// Separate caches: the catalog lists each under its upstream.
	code, b, _ := get(t, http.MethodGet, m.URL, "/v2/_catalog")
	var cat struct{ Repositories []string }
	if code != http.StatusOK || json.Unmarshal(b, &cat) != nil || strings.Join(cat.Repositories, " ") != "docker.io/library/alpine mcr.microsoft.com/windows/servercore" {
		t.Errorf("catalog: %d %s", code, b)
	}
}

// TestMirrorTagTTL: a tag is served from the cache until the TTL has
// passed, then checked upstream again.
func TestMirrorTagTTL(t *testing.T) {
	up := fixture.NewRegistry(t)
	a, _ := random.Image(100, 1)
	b, _ := random.Image(100, 1)
	idA := up.Push(t, "app", "v1", a)
	fresh := startMirror(t, "", server.WithProxy(server.Upstream{URL: up.URL}), server.WithProxyTTL(time.Hour))
	always := startMirror(t, "", server.WithProxy(server.Upstream{URL: up.URL}), server.WithProxyTTL(0))
	for _, m := range []*server.Server{fresh, always} {
		if _, body, _ := get(t, http.MethodGet, m.URL, "/v2/app/manifests/v1"); sha(body) != idA.String() {
			t.Fatalf("first pull: %s", body)
		}
	}
	idB := up.Push(t, "app", "v1", b)
	if _, body, _ := get(t, http.MethodGet, fresh.URL, "/v2/app/manifests/v1"); sha(body) != idA.String() {
		t.Errorf("within the TTL the tag moved to %s", sha(body))
	}
	if _, body, _ := get(t, http.MethodGet, always.URL, "/v2/app/manifests/v1"); sha(body) != idB.String() {
		t.Errorf("with TTL 0 the tag is %s, upstream has %s", sha(body), idB)
	}
}

// TestMirrorCredentials: upstream credentials come from the options or
// the docker config, and are never logged.
func TestMirrorCredentials(t *testing.T) {
	const user, pass = "alice", "s3cret-pa55word"
	dir := t.TempDir()
	up := startMirror(t, "", server.WithHTPasswd(htpasswdFile(t, user, pass, bcrypt.MinCost))) // a plain registry with basic auth
	img, err := random.Image(200, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(up.Host() + "/private/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: user, Password: pass})); err != nil {
		t.Fatal(err)
	}
	id, _ := img.Digest()
	t.Setenv("DOCKER_CONFIG", dir) // no config.json yet: anonymous
	var log strings.Builder
	var mu sync.Mutex
	logTo := server.WithLog(writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return log.Write(b) }), "debug")
	for _, c := range []struct {
		name string
		up   server.Upstream
		cfg  string
		ok   bool
	}{
		{"anonymous", server.Upstream{URL: up.URL}, "", false},
		{"flags", server.Upstream{URL: up.URL, Username: user, Password: pass}, "", true},
		{"docker config", server.Upstream{URL: up.URL}, `{"auths":{"` + up.Host() + `":{"auth":"` + base64.StdEncoding.EncodeToString([]byte(user+":"+pass)) + `"}}}`, true},
	} {
		if c.cfg != "" {
			if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(c.cfg), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		m := startMirror(t, "", server.WithProxy(c.up), logTo)
		code, b, _ := get(t, http.MethodGet, m.URL, "/v2/private/app/manifests/v1")
		if got := code == http.StatusOK && sha(b) == id.String(); got != c.ok {
			t.Errorf("%s: %d %s", c.name, code, b)
		}
		if c.ok {
			layers, _ := img.Layers()
			d, _ := layers[0].Digest()
			wantBlob(t, m.URL, "private/app", d)
		}
		if strings.Contains(string(b), pass) {
			t.Errorf("%s: the password is in a response", c.name)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(log.String(), pass) || strings.Contains(log.String(), base64.StdEncoding.EncodeToString([]byte(user+":"+pass))) {
		t.Error("the password is in the log")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// TestMirrorLocalize: with --proxy-foreign localize, a tag resolves to a
// manifest (or index of manifests) without urls or foreign layer types,
// whose every layer the mirror serves; the upstream digest still gets the
// upstream bytes; offline, the same localized digests.
func TestMirrorLocalize(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	root := filepath.Join(t.TempDir(), "data")
	opts := []server.Option{server.WithProxy(server.Upstream{URL: e.Reg.URL}), server.WithProxyForeignAllow(allowLoopback), server.WithProxyLocalize(true)}
	m := startMirror(t, root, opts...)
	var check func(ref string) string
	check = func(ref string) string {
		t.Helper()
		code, b, dg := get(t, http.MethodGet, m.URL, "/v2/"+fixture.Repo+"/manifests/"+ref)
		if code != http.StatusOK || sha(b) != dg {
			t.Fatalf("%s: %d %s (digest %s)", ref, code, b, dg)
		}
		if strings.Contains(string(b), "urls") || strings.Contains(string(b), "foreign") || strings.Contains(string(b), "nondistributable") {
			t.Errorf("%s: localized manifest still foreign: %s", ref, b)
		}
		var mf struct {
			Manifests []struct{ Digest string }
			Layers    []struct{ Digest string }
		}
		if err := json.Unmarshal(b, &mf); err != nil {
			t.Fatal(err)
		}
		for _, c := range mf.Manifests {
			check(c.Digest)
		}
		for _, l := range mf.Layers {
			h, _ := v1.NewHash(l.Digest)
			wantBlob(t, m.URL, fixture.Repo, h)
		}
		return dg
	}
	single, index := check(fixture.SingleTag), check(fixture.IndexTag)
	if single == e.SingleID.String() || index == e.Index.String() {
		t.Errorf("localized digests %s, %s are the upstream's", single, index)
	}
	for _, d := range []v1.Hash{e.SingleID, e.Index, e.Manifests[1]} {
		if code, b, _ := get(t, http.MethodGet, m.URL, "/v2/"+fixture.Repo+"/manifests/"+d.String()); code != http.StatusOK || sha(b) != d.String() {
			t.Errorf("by upstream digest %s: %d, got %s", d, code, sha(b))
		}
	}
	e.Reg.Close()
	e.URLs.Close()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m = startMirror(t, root, opts...)
	if s, i := check(fixture.SingleTag), check(fixture.IndexTag); s != single || i != index {
		t.Errorf("offline the localized digests are %s, %s; online %s, %s", s, i, single, index)
	}
}

// TestMirrorHTPasswd: a mirror behind --htpasswd serves nothing, foreign
// blobs included, without credentials, and everything with them.
func TestMirrorHTPasswd(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	m := startMirror(t, "", server.WithProxy(server.Upstream{URL: e.Reg.URL}), server.WithProxyForeignAllow(allowLoopback), server.WithHTPasswd(htpasswdFile(t, "bob", "pw", bcrypt.MinCost)))
	do := func(path string, auth bool) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, m.URL+path, nil)
		req.Header.Set("Accept", strings.Join(mediatype.Manifests, ", "))
		if auth {
			req.SetBasicAuth("bob", "pw")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	paths := []string{"/v2/" + fixture.Repo + "/manifests/" + fixture.SingleTag, "/v2/" + fixture.Repo + "/blobs/" + e.Foreign[0].String()}
	for _, p := range paths {
		if code, _ := do(p, false); code != http.StatusUnauthorized {
			t.Errorf("%s without credentials: %d, want 401", p, code)
		}
	}
	if n := e.URLs.Requests(""); n != 0 {
		t.Errorf("anonymous requests made the mirror fetch %d URLs", n)
	}
	for _, p := range paths {
		if code, b := do(p, true); code != http.StatusOK {
			t.Errorf("%s with credentials: %d %s", p, code, b)
		}
	}
	if code, b := do("/v2/nope/x/manifests/v1?ns=quay.io", false); code != http.StatusNotFound || strings.Contains(string(b), "127.0.0.1") {
		t.Errorf("unknown upstream, private mirror: %d %s", code, b)
	}
}

// TestMirrorConfigProxyRefused: --proxy beside a configuration file that
// is itself a proxy is refused, naming both.
func TestMirrorConfigProxyRefused(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yml")
	yml := "version: 0.1\nstorage:\n  inmemory: {}\nproxy:\n  remoteurl: https://registry-1.docker.io\n"
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := server.Start(context.Background(), "127.0.0.1:0", server.WithConfigFile(cfg), server.WithProxy(server.Upstream{URL: "https://mcr.microsoft.com"}))
	if err == nil {
		_ = s.Close()
		t.Fatal("started")
	}
	if !strings.Contains(err.Error(), "--proxy") || !strings.Contains(err.Error(), "proxy.remoteurl") {
		t.Errorf("error %v names not both", err)
	}
}

// TestMirrorUserAgent: every request the mirror sends, to the upstream
// (its /v2/, tags, manifests, blobs) and to a foreign layer's URL,
// carries ferry's User-Agent.
func TestMirrorUserAgent(t *testing.T) {
	var mu sync.Mutex
	agents := map[string]string{} // "METHOD path" -> User-Agent
	record := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			agents[r.Method+" "+r.URL.Path] = r.UserAgent()
			mu.Unlock()
			h.ServeHTTP(w, r)
		})
	}
	reg := fixture.NewRegistry(t)
	regURL, err := url.Parse(reg.URL)
	if err != nil {
		t.Fatal(err)
	}
	up := httptest.NewServer(record(httputil.NewSingleHostReverseProxy(regURL)))
	defer up.Close()
	foreignBytes := []byte("a foreign layer, only at its URL")
	cdn := httptest.NewServer(record(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(foreignBytes) })))
	defer cdn.Close()
	img, _ := pushWithForeign(t, reg, "ua/app", foreignBytes, cdn.URL+"/layer")
	m := startMirror(t, "", server.WithProxy(server.Upstream{URL: up.URL}), server.WithProxyForeignAllow(allowLoopback))
	if code, b, _ := get(t, http.MethodGet, m.URL, "/v2/ua/app/manifests/v1"); code != http.StatusOK {
		t.Fatalf("manifest: %d %s", code, b)
	}
	if code, b, _ := get(t, http.MethodGet, m.URL, "/v2/ua/app/tags/list"); code != http.StatusOK {
		t.Fatalf("tag list: %d %s", code, b)
	}
	layers, _ := img.Layers()
	cfg, _ := img.ConfigName()
	digests := []v1.Hash{cfg}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	for _, d := range digests {
		wantBlob(t, m.URL, "ua/app", d)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{"GET /v2/", "GET /v2/ua/app/manifests/v1", "GET /v2/ua/app/tags/list", "GET /v2/ua/app/blobs/" + cfg.String(), "GET /layer"} {
		if _, ok := agents[want]; !ok {
			t.Errorf("no request %q reached the upstream or the URL; got %v", want, agents)
		}
	}
	for req, ua := range agents {
		if !strings.HasPrefix(ua, version.UserAgent()) {
			t.Errorf("%s: User-Agent %q, want %q first", req, ua, version.UserAgent())
		}
	}
}

// TestMirrorUpstreamCorrupt: an ordinary blob whose upstream bytes do
// not match its digest is never served whole and not cached; once the
// upstream serves it right, it is.
func TestMirrorUpstreamCorrupt(t *testing.T) {
	reg := fixture.NewRegistry(t)
	img, err := random.Image(4096, 1)
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "app", "v1", img)
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	regURL, _ := url.Parse(reg.URL)
	var corrupt sync.Map
	corrupt.Store(d.String(), true)
	rp := httputil.NewSingleHostReverseProxy(regURL)
	rp.ModifyResponse = func(resp *http.Response) error {
		if _, bad := corrupt.Load(path.Base(resp.Request.URL.Path)); bad && resp.Request.Method == http.MethodGet && resp.StatusCode == http.StatusOK {
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			b[len(b)/2] ^= 0xff
			resp.Body = io.NopCloser(bytes.NewReader(b))
		}
		return nil
	}
	up := httptest.NewServer(rp)
	defer up.Close()
	root := filepath.Join(t.TempDir(), "data")
	m := startMirror(t, root, server.WithProxy(server.Upstream{URL: up.URL}))
	for range 2 {
		if code, b, _ := get(t, http.MethodGet, m.URL, "/v2/app/blobs/"+d.String()); code == http.StatusOK {
			t.Fatalf("a blob the upstream corrupted was served whole (%d bytes)", len(b))
		}
	}
	if code, b, _ := get(t, http.MethodHead, m.URL, "/v2/app/blobs/"+d.String()); code != http.StatusNotFound {
		t.Errorf("HEAD of a blob the upstream corrupts: %d %s, want 404", code, b)
	}
	if _, err := os.Stat(filepath.Join(root, "docker", "registry", "v2", "blobs", "sha256", d.Hex[:2], d.Hex)); !os.IsNotExist(err) {
		t.Errorf("the corrupted bytes were stored (%v)", err)
	}
	if left, _ := filepath.Glob(filepath.Join(root, "docker", "registry", "v2", "repositories", "app", "_uploads", "*")); len(left) != 0 {
		t.Errorf("the corrupted download left uploads: %v", left)
	}
	corrupt.Delete(d.String())
	wantBlob(t, m.URL, "app", d)
}

// TestMirrorForeignLateClient: a client that asks for a foreign blob
// after its download has begun streams the bytes already fetched at once,
// not after the download; the URL is fetched once.
func TestMirrorForeignLateClient(t *testing.T) {
	blob, half, cdn, release, requests := halfwayCDN(t)
	reg := fixture.NewRegistry(t)
	_, d := pushWithForeign(t, reg, "late/app", blob, cdn.URL+"/layer")
	m := startMirror(t, "", server.WithProxy(server.Upstream{URL: reg.URL}), server.WithProxyForeignAllow(allowLoopback))
	if code, b, _ := get(t, http.MethodGet, m.URL, "/v2/late/app/manifests/v1"); code != http.StatusOK {
		t.Fatalf("manifest: %d %s", code, b)
	}
	open := func() (*http.Response, []byte) {
		type opened struct {
			resp  *http.Response
			first []byte
			err   error
		}
		done := make(chan opened, 1)
		go func() {
			resp, err := http.Get(m.URL + "/v2/late/app/blobs/" + d.String())
			if err != nil {
				done <- opened{err: err}
				return
			}
			if resp.StatusCode != http.StatusOK {
				resp.Body.Close()
				done <- opened{err: fmt.Errorf("blob: %s", resp.Status)}
				return
			}
			first := make([]byte, half)
			_, err = io.ReadFull(resp.Body, first)
			done <- opened{resp, first, err}
		}()
		select {
		case o := <-done:
			if o.err != nil {
				t.Fatal(o.err)
			}
			return o.resp, o.first
		case <-time.After(10 * time.Second):
			t.Fatal("the first half of the blob did not come while the download waits for the rest")
			return nil, nil
		}
	}
	early, earlyFirst := open() // starts the download
	late, lateFirst := open()   // comes after its first bytes went out
	release()
	for _, c := range []struct {
		resp  *http.Response
		first []byte
	}{{early, earlyFirst}, {late, lateFirst}} {
		rest, err := io.ReadAll(c.resp.Body)
		c.resp.Body.Close()
		if err != nil || sha(append(c.first, rest...)) != d.String() {
			t.Errorf("blob through the mirror: %v, %d bytes hashing to %s, want %s", err, len(c.first)+len(rest), sha(append(c.first, rest...)), d)
		}
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("the URL was fetched %d times", n)
	}
}

// halfwayCDN serves a 256 KiB foreign blob at any path of cdn's: its
// first half at once, the rest once release is called (or the test
// ends), counting the requests.
func halfwayCDN(t *testing.T) (blob []byte, half int, cdn *httptest.Server, release func(), requests *atomic.Int32) {
	t.Helper()
	blob = make([]byte, 256<<10)
	for i := range blob {
		blob[i] = byte(i * 7)
	}
	half = len(blob) / 2
	released := make(chan struct{})
	release = sync.OnceFunc(func() { close(released) })
	requests = new(atomic.Int32)
	cdn = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Length", fmt.Sprint(len(blob)))
		_, _ = w.Write(blob[:half])
		w.(http.Flusher).Flush()
		select {
		case <-released:
			_, _ = w.Write(blob[half:])
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(cdn.Close)
	t.Cleanup(release) // before cdn.Close, which waits for its handlers
	return blob, half, cdn, release, requests
}

// pushWithForeign pushes to reg, as repo:v1, a random image with one more
// layer, foreign, whose bytes are at url; it returns the image and that
// layer's digest.
func pushWithForeign(t *testing.T, reg *fixture.Registry, repo string, foreignBytes []byte, url string) (v1.Image, v1.Hash) {
	t.Helper()
	img, err := random.Image(300, 1)
	if err != nil {
		t.Fatal(err)
	}
	fl := static.NewLayer(foreignBytes, types.DockerForeignLayer)
	if img, err = mutate.Append(img, mutate.Addendum{Layer: fl, URLs: []string{url}}); err != nil {
		t.Fatal(err)
	}
	reg.Push(t, repo, "v1", img)
	d, err := fl.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return img, d
}

// TestMirrorPrefetchesConfig: serving an image manifest starts fetching
// its config into the cache, without any client asking for the config:
// with the upstream gone afterwards, the mirror still serves it.
func TestMirrorPrefetchesConfig(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	root := filepath.Join(t.TempDir(), "data")
	m := startMirror(t, root, server.WithProxy(server.Upstream{URL: e.Reg.URL}), server.WithProxyForeignAllow(allowLoopback))
	if code, b, _ := get(t, http.MethodGet, m.URL, "/v2/"+fixture.Repo+"/manifests/"+fixture.SingleTag); code != http.StatusOK {
		t.Fatalf("manifest through the mirror: %d %s", code, b)
	}
	cfg := e.Configs[0]
	data := filepath.Join(root, "docker", "registry", "v2", "blobs", "sha256", cfg.Hex[:2], cfg.Hex, "data")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(data); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the config %s was not fetched into the cache after its manifest was served", cfg)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := e.Reg.Count("GET", "/blobs/"+cfg.String()); n != 1 {
		t.Errorf("the upstream was asked %d times for the config, want 1", n)
	}
	e.Reg.Close()
	wantBlob(t, m.URL, fixture.Repo, cfg)
}

// TestMirrorPingsAnAnonymousUpstreamOnce: distribution's proxy asks an
// upstream's /v2/ before every tag and manifest it fetches until it has
// an authentication challenge, which an upstream without authentication
// never gives; the mirror answers those asks from the last answer for
// pingFresh, so pulling several tags costs no ping each.
func TestMirrorPingsAnAnonymousUpstreamOnce(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	m := startMirror(t, "", server.WithProxy(server.Upstream{URL: e.Reg.URL}), server.WithProxyForeignAllow(allowLoopback), server.WithProxyTTL(0))
	pings := func() int {
		// Every GET's path contains "/v2/"; a ping's is nothing more.
		return e.Reg.Count("GET", "/v2/") - e.Reg.Count("GET", "/v2/"+fixture.Repo)
	}
	// The first pull may ping (the mirror's proxy is built on demand).
	if code, b, _ := get(t, http.MethodGet, m.URL, "/v2/"+fixture.Repo+"/manifests/"+fixture.SingleTag); code != http.StatusOK {
		t.Fatalf("manifest through the mirror: %d %s", code, b)
	}
	// Its config is fetched beside (ferry's own client, which pings once
	// per repository): wait for that to end.
	if code, _, _ := get(t, http.MethodHead, m.URL, "/v2/"+fixture.Repo+"/blobs/"+e.Configs[0].String()); code != http.StatusOK {
		t.Fatalf("HEAD of the config through the mirror: %d", code)
	}
	before, manifests := pings(), e.Reg.Count("", "/manifests/")
	for range 3 {
		for _, tag := range []string{fixture.SingleTag, fixture.IndexTag} {
			if code, b, _ := get(t, http.MethodGet, m.URL, "/v2/"+fixture.Repo+"/manifests/"+tag); code != http.StatusOK {
				t.Fatalf("manifest %s through the mirror: %d %s", tag, code, b)
			}
		}
	}
	if e.Reg.Count("", "/manifests/") == manifests {
		t.Fatal("the tags were not checked upstream (TTL 0): the test asks nothing of the ping cache")
	}
	if n := pings() - before; n != 0 {
		t.Errorf("6 tag pulls within %v pinged the upstream's /v2/ %d times, want 0", 30*time.Second, n)
	}
}

// A cold pull through a new mirror pings the upstream once: the blobs a
// client asks for at once share one client build, and that build takes
// the ping distribution's proxy made for the manifest.
func TestMirrorColdPullPingsTheUpstreamOnce(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	m := startMirror(t, "", server.WithProxy(server.Upstream{URL: e.Reg.URL}), server.WithProxyForeignAllow(allowLoopback))
	pings := func() int { return e.Reg.Count("GET", "/v2/") - e.Reg.Count("GET", "/v2/"+fixture.Repo) }
	before := pings()
	if code, b, _ := get(t, http.MethodGet, m.URL, "/v2/"+fixture.Repo+"/manifests/"+fixture.SingleTag); code != http.StatusOK {
		t.Fatalf("manifest through the mirror: %d %s", code, b)
	}
	pullBlobsAtOnce(t, m.URL, e.Configs[0], e.Blobs[0], e.Configs[1], e.Blobs[1])
	if n := pings() - before; n != 1 {
		t.Errorf("a cold pull of a manifest and 4 blobs pinged the upstream's /v2/ %d times, want 1", n)
	}
}

// The blobs a client asks for at once, from an upstream with token
// authentication, share one client build: one token, not one each.
func TestMirrorBlobsShareOneUpstreamToken(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	target, err := url.Parse(e.Reg.URL)
	if err != nil {
		t.Fatal(err)
	}
	forward := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	tokens := map[string]int{} // User-Agent -> token requests
	var up *httptest.Server
	up = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/token":
			mu.Lock()
			tokens[r.UserAgent()]++
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"token":"t","access_token":"t"}`))
		case r.Header.Get("Authorization") != "Bearer t":
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+up.URL+`/token",service="test"`)
			w.WriteHeader(http.StatusUnauthorized)
		default:
			r.Header.Del("Authorization")
			forward.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(up.Close)
	m := startMirror(t, "", server.WithProxy(server.Upstream{URL: up.URL}), server.WithProxyForeignAllow(allowLoopback))
	if code, b, _ := get(t, http.MethodGet, m.URL, "/v2/"+fixture.Repo+"/manifests/"+fixture.SingleTag); code != http.StatusOK {
		t.Fatalf("manifest through the mirror: %d %s", code, b)
	}
	pullBlobsAtOnce(t, m.URL, e.Configs[0], e.Blobs[0], e.Configs[1], e.Blobs[1])
	mu.Lock()
	defer mu.Unlock()
	n := 0
	for ua, k := range tokens {
		if strings.Contains(ua, "go-containerregistry") {
			n += k
		}
	}
	if n != 1 {
		t.Errorf("4 blobs pulled at once asked the upstream's token server %d times (%v), want 1", n, tokens)
	}
}

// pullBlobsAtOnce gets blobs of fixture.Repo through the mirror at mirror,
// all at once, as a client pulling an image does.
func pullBlobsAtOnce(t *testing.T, mirror string, blobs ...v1.Hash) {
	t.Helper()
	var wg sync.WaitGroup
	for _, d := range blobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, _, _ := get(t, http.MethodGet, mirror, "/v2/"+fixture.Repo+"/blobs/"+d.String()); code != http.StatusOK {
				t.Errorf("blob %s through the mirror: %d", d, code)
			}
		}()
	}
	wg.Wait()
}

// TestMirrorUpstreamStallEndsTheDownload: an upstream that sends a
// blob's first bytes and then falls silent does not hold the download
// for ever: after the stall timeout the client streaming it is cut short,
// nothing is stored, and once the upstream answers again the blob comes
// through (the old code kept the download, and every request for the
// blob waiting on it, until the server closed).
func TestMirrorUpstreamStallEndsTheDownload(t *testing.T) {
	server.KeepProxyStall(t)
	reg, layer := oneLayerApp(t, 64<<10)
	d, _ := layer.Digest()
	regURL, _ := url.Parse(reg.URL)
	var hang atomic.Bool
	hang.Store(true)
	rp := httputil.NewSingleHostReverseProxy(regURL)
	rp.ModifyResponse = func(resp *http.Response) error {
		if hang.Load() && resp.Request.Method == http.MethodGet && path.Base(resp.Request.URL.Path) == d.String() {
			body, ctx := resp.Body, resp.Request.Context()
			resp.Body = io.NopCloser(io.MultiReader(io.LimitReader(body, 1024), readerFunc(func([]byte) (int, error) {
				<-ctx.Done() // silent until the mirror gives up
				return 0, ctx.Err()
			})))
		}
		return nil
	}
	rp.FlushInterval = -1
	up := httptest.NewServer(rp)
	t.Cleanup(up.Close) // after the mirror's Close, which ends a download still hanging
	m := startMirror(t, "", server.WithProxy(server.Upstream{URL: up.URL}), server.WithStallTimeout(300*time.Millisecond))
	c := stallFreeClient()
	resp, err := c.Get(m.URL + "/v2/app/blobs/" + d.String())
	if err != nil {
		t.Fatalf("GET while the upstream stalls: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode == http.StatusOK {
		t.Fatalf("a blob whose upstream stalled was served whole (%d bytes)", len(b))
	}
	if os.IsTimeout(err) {
		t.Fatalf("the download did not end when the upstream stalled: %v", err)
	}
	hang.Store(false)
	// At once: the failed download, still cleaning up, is not joined.
	if resp, err = c.Head(m.URL + "/v2/app/blobs/" + d.String()); err != nil {
		t.Fatalf("HEAD once the upstream answers again: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD once the upstream answers again: %s", resp.Status)
	}
	if resp, err = c.Get(m.URL + "/v2/app/blobs/" + d.String()); err != nil {
		t.Fatal(err)
	}
	b, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || sha(b) != d.String() {
		t.Errorf("blob once the upstream answers again: %s %v, %d bytes hashing to %s", resp.Status, err, len(b), sha(b))
	}
}

// stallFreeClient is an HTTP client of its own transport, for tests that
// give a mirror a short stall timeout: mirrors give net/http's default
// transport theirs.
func stallFreeClient() *http.Client {
	return &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
}

// oneLayerApp pushes a random image of one layer of size bytes to a new
// registry as app:v1 and returns the registry and the layer.
func oneLayerApp(t *testing.T, size int64) (*fixture.Registry, v1.Layer) {
	t.Helper()
	reg := fixture.NewRegistry(t)
	img, err := random.Image(size, 1)
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "app", "v1", img)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return reg, layers[0]
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

// TestMirrorSilentUpstreamServesTheCachedTag: a tag whose check upstream
// meets an upstream that takes the request and then says nothing is
// served from the cache after the stall timeout (the old code waited on
// the upstream as long as the client did: distribution's proxy asks
// through net/http's default transport, which had no stall watch).
func TestMirrorSilentUpstreamServesTheCachedTag(t *testing.T) {
	server.KeepProxyStall(t)
	reg := fixture.NewRegistry(t)
	img, err := random.Image(100, 1)
	if err != nil {
		t.Fatal(err)
	}
	id := reg.Push(t, "app", "v1", img)
	regURL, _ := url.Parse(reg.URL)
	var hang atomic.Bool
	rp := httputil.NewSingleHostReverseProxy(regURL)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() && strings.HasSuffix(r.URL.Path, "/manifests/v1") {
			<-r.Context().Done() // silent until the mirror gives up
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close) // after the mirror's Close
	m := startMirror(t, "", server.WithProxy(server.Upstream{URL: up.URL}), server.WithProxyTTL(0), server.WithStallTimeout(300*time.Millisecond))
	c := stallFreeClient()
	for _, when := range []string{"first pull", "tag while the upstream is silent"} {
		req, _ := http.NewRequest(http.MethodGet, m.URL+"/v2/app/manifests/v1", nil)
		req.Header.Set("Accept", strings.Join(mediatype.Manifests, ", "))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || sha(b) != id.String() {
			t.Fatalf("%s: %s %s, want %s", when, resp.Status, b, id)
		}
		hang.Store(true)
	}
}

// TestParseUpstreamHidesPassword: a --proxy value refused for its empty
// NAME does not echo the password of the URL's user part.
func TestParseUpstreamHidesPassword(t *testing.T) {
	_, err := server.ParseUpstream("=https://user:s3cret@registry.example")
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "empty NAME") {
		t.Errorf("ParseUpstream: %v, want the empty NAME refused without the password", err)
	}
}

// TestMirrorLateClientOfAnUnsizedBlob: a GET that comes while a blob
// whose upstream gives no size downloads does not read the blob from the
// upstream a second time for nothing (it is served from the cache once
// the download has stored it): the old code read the whole body, then
// waited for the download all the same.
func TestMirrorLateClientOfAnUnsizedBlob(t *testing.T) {
	reg, layer := oneLayerApp(t, 64<<10)
	d, _ := layer.Digest()
	rc, _ := layer.Compressed()
	blob, _ := io.ReadAll(rc)
	regURL, _ := url.Parse(reg.URL)
	rp := httputil.NewSingleHostReverseProxy(regURL)
	release := make(chan struct{})
	var gets atomic.Int32
	secondGone := make(chan struct{}) // the second GET's reader went away before the release
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || path.Base(r.URL.Path) != d.String() {
			rp.ServeHTTP(w, r)
			return
		}
		n := gets.Add(1)
		_, _ = w.Write(blob[:1024]) // no Content-Length: chunked
		w.(http.Flusher).Flush()
		select {
		case <-release:
			_, _ = w.Write(blob[1024:])
		case <-r.Context().Done():
			if n == 2 {
				close(secondGone)
			}
		}
	}))
	t.Cleanup(up.Close)
	m := startMirror(t, "", server.WithProxy(server.Upstream{URL: up.URL}))
	c := stallFreeClient()
	pull := func() <-chan error { return pullAsync(c, m.URL+"/v2/app/blobs/"+d.String(), d) }
	first := pull()
	for gets.Load() < 1 {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the download has its headers: a GET now is late
	late := pull()
	select {
	case <-secondGone:
	case <-time.After(3 * time.Second):
		t.Error("the late GET kept reading the unsized blob from the upstream")
	}
	close(release)
	for _, ch := range []<-chan error{first, late} {
		if err := <-ch; err != nil {
			t.Errorf("blob through the mirror: %v", err)
		}
	}
}

// An upstream that redirects a blob to its storage with a presigned URL
// (as distribution on S3 does) which then fails: the mirror's log names
// the failure, not the URL's signature or session token.
func TestMirrorLogHidesPresignedURLs(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	up, storage := fixture.PresignedRedirect(t, e.Reg.URL, e.Blobs[0])
	var logs lockedBuffer
	m := startMirror(t, "", server.WithProxy(server.Upstream{URL: up}), server.WithProxyForeignAllow(allowLoopback), server.WithLog(&logs, "warn"))
	if code, b, _ := get(t, http.MethodGet, m.URL, "/v2/"+fixture.Repo+"/manifests/"+fixture.SingleTag); code != http.StatusOK {
		t.Fatalf("manifest through the mirror: %d %s", code, b)
	}
	code, body, _ := get(t, http.MethodGet, m.URL, "/v2/"+fixture.Repo+"/blobs/"+e.Blobs[0].String())
	if code == http.StatusOK {
		t.Fatalf("a blob whose storage dropped the connection was served")
	}
	out := logs.String() + string(body)
	if !strings.Contains(out, storage) {
		t.Fatalf("the failed download is not logged with its URL (the test asks nothing):\n%s", out)
	}
	for _, secret := range fixture.PresignedSecrets {
		if strings.Contains(out, secret) {
			t.Errorf("%s in the mirror's log or answer:\n%s", secret, out)
		}
	}
}

// TestMirrorTagListNamesTheClientsRepository: a tag list, and the 404 for
// a repository the upstream does not have, name the repository as the
// client did, not the cache's PREFIX/REPO (the old code's 404 did).
func TestMirrorTagListNamesTheClientsRepository(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	m := startMirror(t, "", server.WithProxy(server.Upstream{URL: e.Reg.URL}))
	code, b, _ := get(t, http.MethodGet, m.URL, "/v2/"+fixture.Repo+"/tags/list")
	var list struct {
		Name string `json:"name"`
	}
	if code != http.StatusOK || json.Unmarshal(b, &list) != nil || list.Name != fixture.Repo {
		t.Errorf("tag list of %s: %d %s", fixture.Repo, code, b)
	}
	code, b, _ = get(t, http.MethodGet, m.URL, "/v2/nope/app/tags/list")
	var errs struct {
		Errors []struct {
			Code   string
			Detail struct{ Name string }
		}
	}
	if code != http.StatusNotFound || json.Unmarshal(b, &errs) != nil || len(errs.Errors) != 1 || errs.Errors[0].Code != "NAME_UNKNOWN" || errs.Errors[0].Detail.Name != "nope/app" {
		t.Errorf("tag list of a repository the upstream lacks: %d %s, want 404 NAME_UNKNOWN naming nope/app", code, b)
	}
}

// TestMirrorLocalizePartialIndexOffline: offline, an index whose mirror
// holds one platform's image only (filled in keep mode, as a node of that
// platform pulls) is localized for that platform, the other entry kept as
// upstream, where the old code refused the whole tag; the node pulls its
// image, with no foreign layer left in it.
func TestMirrorLocalizePartialIndexOffline(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	root := filepath.Join(t.TempDir(), "data")
	keep := startMirror(t, root, server.WithProxy(server.Upstream{URL: e.Reg.URL}), server.WithProxyForeignAllow(allowLoopback))
	for _, ref := range []string{fixture.IndexTag, e.Manifests[0].String()} {
		if code, b, _ := get(t, http.MethodGet, keep.URL, "/v2/"+fixture.Repo+"/manifests/"+ref); code != http.StatusOK {
			t.Fatalf("%s: %d %s", ref, code, b)
		}
	}
	for _, d := range []v1.Hash{e.Configs[0], e.Blobs[0], e.Foreign[0], e.Foreign[1]} {
		wantBlob(t, keep.URL, fixture.Repo, d)
	}
	if err := keep.Close(); err != nil {
		t.Fatal(err)
	}
	e.Reg.Close()
	e.URLs.Close()
	m := startMirror(t, root, server.WithProxy(server.Upstream{URL: e.Reg.URL}), server.WithProxyForeignAllow(allowLoopback), server.WithProxyLocalize(true))
	code, b, _ := get(t, http.MethodGet, m.URL, "/v2/"+fixture.Repo+"/manifests/"+fixture.IndexTag)
	if code != http.StatusOK {
		t.Fatalf("the index tag offline, one platform cached: %d %s", code, b)
	}
	var idx struct{ Manifests []struct{ Digest string } }
	if err := json.Unmarshal(b, &idx); err != nil || len(idx.Manifests) != 2 {
		t.Fatalf("index: %v %s", err, b)
	}
	if idx.Manifests[0].Digest == e.Manifests[0].String() || idx.Manifests[1].Digest != e.Manifests[1].String() {
		t.Errorf("entries %s, %s: want the cached platform localized, the other as upstream (%s)", idx.Manifests[0].Digest, idx.Manifests[1].Digest, e.Manifests[1])
	}
	code, b, _ = get(t, http.MethodGet, m.URL, "/v2/"+fixture.Repo+"/manifests/"+idx.Manifests[0].Digest)
	if code != http.StatusOK || strings.Contains(string(b), "urls") {
		t.Fatalf("the cached platform's localized image: %d %s", code, b)
	}
	var img struct{ Layers []struct{ Digest string } }
	if err := json.Unmarshal(b, &img); err != nil {
		t.Fatal(err)
	}
	for _, l := range img.Layers {
		h, _ := v1.NewHash(l.Digest)
		wantBlob(t, m.URL, fixture.Repo, h)
	}
}
