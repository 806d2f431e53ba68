package server

// The mirror's front handler: it gives every request the local name of
// the repository it asks for (proxy.go's route), and serves the foreign
// blobs distribution's proxy cannot. A GET or HEAD for a blob that is
// not cached and that the upstream does not hold (distribution answers
// 404), which a cached manifest of the repository lists with urls, is
// fetched by ferry's foreign fetcher (URL policy checked on every
// address dialed and redirect, retries, resume, size and digest verified
// while streaming) and written through distribution's blob writer, so it
// lands in the storage like any pushed blob. One download runs per blob:
// the first GET streams it while it is stored, other requests wait for it
// and are then served from the cache. A fetch that fails stores nothing
// and is answered 404 BLOB_UNKNOWN, naming neither URL nor reason (both
// are logged).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/distribution/reference"
	ggcrv1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/gorilla/mux"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"

	"github.com/ferry-dev/ferry/internal/regstorage/storedmanifest"
)

// mirrorLayer is the mirror's front handler.
type mirrorLayer struct {
	next      http.Handler
	m         *mirror
	routes    *mux.Router // distribution's
	referrers *mux.Router
	prefix    string // http.prefix
	private   bool   // authentication is configured: errors name no upstream
}

// handler puts the mirror's front handler before next.
func (m *mirror) handler(next http.Handler, cfg *configuration.Configuration) http.Handler {
	l := &mirrorLayer{next: next, m: m, routes: v2.RouterWithPrefix(cfg.HTTP.Prefix), referrers: mux.NewRouter(), prefix: cfg.HTTP.Prefix}
	l.private = cfg.Auth.Type() != "" && !strings.EqualFold(cfg.Auth.Type(), "none")
	r := l.referrers
	if cfg.HTTP.Prefix != "" {
		r = r.PathPrefix(cfg.HTTP.Prefix).Subrouter()
	}
	r.Path("/v2/{name:" + reference.NameRegexp.String() + "}/referrers/{digest}")
	return l
}

// ServeHTTP implements http.Handler.
func (l *mirrorLayer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var match mux.RouteMatch
	var name, route string
	switch {
	case l.routes.Match(r, &match) && match.Vars["name"] != "":
		name, route = match.Vars["name"], match.Route.GetName()
	case l.referrers.Match(r, &match):
		name = match.Vars["name"]
	default:
		l.next.ServeHTTP(w, r)
		return
	}
	q := r.URL.Query()
	ns := q.Get("ns")
	local, ok := l.m.route(ns, name)
	if !ok {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		serveError(w, errcode.ErrorCodeNameUnknown.WithMessage(l.m.unknown(ns, name, l.private)))
		return
	}
	base := strings.TrimSuffix(l.prefix, "/") + "/v2/"
	rest, found := strings.CutPrefix(r.URL.Path, base+name)
	if !found {
		l.next.ServeHTTP(w, r)
		return
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = base+local+rest, ""
	q.Del("ns")
	r2.URL.RawQuery = q.Encode()
	r2.RequestURI = r2.URL.RequestURI()
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	if read && (route == v2.RouteNameBlob || route == v2.RouteNameManifest || route == v2.RouteNameTags) {
		if route == v2.RouteNameTags && r.Method == http.MethodGet {
			w = &tagListName{ResponseWriter: w, name: name}
			defer w.(*tagListName).flush()
		}
		l.serveRead(w, r2, local, route, match.Vars["digest"])
		return
	}
	l.next.ServeHTTP(w, r2)
}

// unknown says why a request names no upstream, listing the names
// unless the mirror is private: this answer comes before authentication.
func (m *mirror) unknown(ns, name string, private bool) string {
	names := make([]string, len(m.ups))
	for i, u := range m.ups {
		names[i] = u.Name
	}
	if private {
		return "this mirror has no such upstream"
	}
	if ns != "" {
		return fmt.Sprintf("this mirror has no upstream %q (it has %s)", ns, strings.Join(names, ", "))
	}
	return fmt.Sprintf("repository %s names no upstream of this mirror: give ?ns=NAME or start the name with NAME/ (NAME one of %s)", name, strings.Join(names, ", "))
}

// serveRead serves a GET or HEAD of a manifest, blob or tag list through
// distribution (the cache, then the upstream). A blob it does not find is
// fetched from the foreign URLs a cached manifest gives it. A server error
// (distribution's proxy answers 500 when the upstream cannot be reached
// for what is not cached) becomes 404 *_UNKNOWN saying so: the content is
// unknown to the mirror, and a client with other hosts tries the next.
func (l *mirrorLayer) serveRead(w http.ResponseWriter, r *http.Request, local, route, dgst string) {
	hw := &holdMiss{ResponseWriter: w}
	l.next.ServeHTTP(hw, r)
	if !hw.held {
		return
	}
	if route == v2.RouteNameBlob {
		d, err := digest.Parse(dgst)
		var desc ocispec.Descriptor
		if err == nil {
			desc, err = l.m.foreignLayer(r.Context(), local, d)
		}
		if err == nil {
			clear(w.Header())
			l.m.serveForeign(w, r, local, desc, l.next)
			return
		}
	}
	if hw.code < 500 {
		hw.release()
		return
	}
	logrus.WithField("repository", local).Warnf("mirror: %s %s: upstream failed: %s", r.Method, r.URL.Path, bytes.TrimSpace(hw.body))
	code := map[string]errcode.ErrorCode{
		v2.RouteNameBlob:     errcode.ErrorCodeBlobUnknown,
		v2.RouteNameManifest: errcode.ErrorCodeManifestUnknown,
		v2.RouteNameTags:     errcode.ErrorCodeNameUnknown,
	}[route]
	up, _ := l.m.split(local)
	clear(w.Header())
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	serveError(w, code.WithMessage(fmt.Sprintf("not in the mirror's cache, and upstream %s could not be asked for it", up.Name)))
}

// holdMiss passes a response on unless it is a 404 or a server error,
// which it holds back (status and body) for the caller to release or
// replace.
type holdMiss struct {
	http.ResponseWriter
	decided bool
	held    bool
	code    int
	body    []byte
}

// WriteHeader implements http.ResponseWriter.
func (h *holdMiss) WriteHeader(code int) {
	if h.decided {
		return
	}
	h.decided = true
	if code == http.StatusNotFound || code >= 500 {
		h.held, h.code = true, code
		return
	}
	h.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (h *holdMiss) Write(b []byte) (int, error) {
	if !h.decided {
		h.WriteHeader(http.StatusOK)
	}
	if h.held {
		if len(h.body) < 64<<10 {
			h.body = append(h.body, b...)
		}
		return len(b), nil
	}
	return h.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (h *holdMiss) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// release writes the held response.
func (h *holdMiss) release() {
	h.ResponseWriter.WriteHeader(h.code)
	_, _ = h.ResponseWriter.Write(h.body)
}

// errNotForeign means no cached manifest lists a blob with urls.
var errNotForeign = errors.New("no cached manifest lists the blob with urls")

// foreignLayer finds, in the cached manifests of repository local, a
// layer with digest d and urls.
func (m *mirror) foreignLayer(ctx context.Context, local string, d digest.Digest) (ocispec.Descriptor, error) {
	named, err := reference.WithName(local)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	repo, err := m.local.Repository(ctx, named)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	enum, ok := ms.(distribution.ManifestEnumerator)
	if !ok {
		return ocispec.Descriptor{}, errNotForeign
	}
	var mu sync.Mutex
	var found *ocispec.Descriptor
	errFound := errors.New("found")
	err = enum.Enumerate(ctx, func(md digest.Digest) error {
		for _, l := range m.facts.layers(ctx, m.local, md) {
			if l.Digest == d {
				mu.Lock()
				found = &l
				mu.Unlock()
				return errFound
			}
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if found == nil {
		if err != nil && !errors.Is(err, errFound) {
			return ocispec.Descriptor{}, err
		}
		return ocispec.Descriptor{}, errNotForeign
	}
	return *found, nil
}

// foreignFacts caches, per manifest digest, its layers with urls.
// Manifests are content-addressed: an entry never goes stale.
type foreignFacts struct {
	mu sync.Mutex
	m  map[digest.Digest][]ocispec.Descriptor
}

// layers returns manifest md's layers that have urls, none when it
// cannot be read or parsed.
func (f *foreignFacts) layers(ctx context.Context, ns distribution.Namespace, md digest.Digest) []ocispec.Descriptor {
	f.mu.Lock()
	ls, ok := f.m[md]
	f.mu.Unlock()
	if ok {
		return ls
	}
	payload, err := storedmanifest.Read(ctx, ns, md)
	if err != nil {
		return nil
	}
	var mf struct {
		Layers []ocispec.Descriptor `json:"layers"`
	}
	if json.Unmarshal(payload, &mf) == nil {
		for _, l := range mf.Layers {
			if len(l.URLs) > 0 {
				ls = append(ls, l)
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil || len(f.m) >= maxCachedManifests {
		f.m = map[digest.Digest][]ocispec.Descriptor{}
	}
	f.m[md] = ls
	return ls
}

// flight is one download of a foreign blob.
type flight struct {
	done chan struct{}
	err  error // set before done is closed
}

// flights are the downloads running, by repository and digest.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

// join returns key's download and whether the caller starts it.
func (fs *flights) join(key string) (*flight, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f, ok := fs.m[key]; ok {
		return f, false
	}
	if fs.m == nil {
		fs.m = map[string]*flight{}
	}
	f := &flight{done: make(chan struct{})}
	fs.m[key] = f
	return f, true
}

// end records key's result and lets its waiters go.
func (fs *flights) end(key string, f *flight, err error) {
	f.err = err
	fs.mu.Lock()
	delete(fs.m, key)
	fs.mu.Unlock()
	close(f.done)
}

// serveForeign answers a request for foreign blob desc of repository
// local: it joins (or starts) the blob's download, streaming it to a
// whole-blob GET that starts it, and serves everyone else from the cache
// once it is stored.
func (m *mirror) serveForeign(w http.ResponseWriter, r *http.Request, local string, desc ocispec.Descriptor, next http.Handler) {
	key := local + "@" + desc.Digest.String()
	f, leader := m.flights.join(key)
	var t *tap
	if leader {
		if r.Method == http.MethodGet && r.Header.Get("Range") == "" {
			t = &tap{w: w}
		}
		go func() { m.flights.end(key, f, m.download(local, desc, t)) }()
	}
	select {
	case <-f.done:
	case <-r.Context().Done():
		t.stop() // the download goes on, for the others and the cache
		return
	}
	if t.wasStarted() {
		return // streamed; cut short on failure, so the client sees it
	}
	if f.err != nil {
		logrus.WithField("digest", desc.Digest).WithField("repository", local).Warnf("foreign blob not fetched: %v", f.err)
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		serveError(w, errcode.ErrorCodeBlobUnknown.WithMessage("foreign blob not in the cache, and it could not be fetched from its urls").WithDetail(desc.Digest))
		return
	}
	next.ServeHTTP(w, r)
}

// download fetches foreign blob desc from its urls into repository
// local's storage, copying it to t (when not nil) as it goes. It runs
// under the server's context, not a request's: a client that goes away
// does not end it.
func (m *mirror) download(local string, desc ocispec.Descriptor, t *tap) error {
	ctx := m.ctx
	named, err := reference.WithName(local)
	if err != nil {
		return err
	}
	repo, err := m.local.Repository(ctx, named)
	if err != nil {
		return err
	}
	blobs := repo.Blobs(ctx)
	if _, err := blobs.Stat(ctx, desc.Digest); err == nil {
		return nil // stored meanwhile (another replica, a flight just ended)
	}
	h, err := ggcrv1.NewHash(desc.Digest.String())
	if err != nil {
		return err
	}
	rc, err := m.fetcher.Open(ctx, ggcrv1.Descriptor{MediaType: "application/octet-stream", Digest: h, Size: desc.Size, URLs: desc.URLs})
	if err != nil {
		return err
	}
	defer rc.Close()
	bw, err := blobs.Create(ctx)
	if err != nil {
		return fmt.Errorf("store foreign blob %s: %w", desc.Digest, err)
	}
	t.start(desc)
	var dst io.Writer = bw
	if t != nil {
		dst = io.MultiWriter(bw, t)
	}
	if _, err := io.CopyBuffer(dst, rc, make([]byte, 1<<20)); err != nil {
		_ = bw.Cancel(ctx)
		return err
	}
	if _, err := bw.Commit(ctx, ocispec.Descriptor{MediaType: "application/octet-stream", Digest: desc.Digest, Size: desc.Size}); err != nil {
		_ = bw.Cancel(ctx)
		return fmt.Errorf("store foreign blob %s: %w", desc.Digest, err)
	}
	t.finish()
	return nil
}

// tap passes a download's bytes to the client whose GET started it. It
// holds back the last byte until the blob is stored (verified), so that
// a client never receives a whole body that failed verification; a client
// that goes away is dropped and the download goes on.
type tap struct {
	w       http.ResponseWriter
	mu      sync.Mutex
	started bool
	stopped bool // the handler returned, or the client failed
	last    []byte
}

// start writes the response headers.
func (t *tap) start(desc ocispec.Descriptor) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	h := t.w.Header()
	h.Set("Docker-Distribution-API-Version", "registry/2.0")
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(desc.Size, 10))
	h.Set("Docker-Content-Digest", desc.Digest.String())
	h.Set("Etag", `"`+desc.Digest.String()+`"`)
	t.w.WriteHeader(http.StatusOK)
	t.started = true
}

// Write implements io.Writer; it never fails, so that the download goes
// on without the client.
func (t *tap) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped || !t.started || len(p) == 0 {
		return len(p), nil
	}
	if len(t.last) > 0 {
		if _, err := t.w.Write(t.last); err != nil {
			t.stopped = true
			return len(p), nil
		}
	}
	if _, err := t.w.Write(p[:len(p)-1]); err != nil {
		t.stopped = true
		return len(p), nil
	}
	t.last = append(t.last[:0], p[len(p)-1])
	return len(p), nil
}

// finish sends the byte held back.
func (t *tap) finish() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped && t.started && len(t.last) > 0 {
		_, _ = t.w.Write(t.last)
	}
	t.last = nil
}

// stop detaches the client.
func (t *tap) stop() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
}

// wasStarted reports whether the response went out through the tap.
func (t *tap) wasStarted() bool {
	if t == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.started
}

// tagListName gives a tag list the repository name the client asked for,
// not the cache's (PREFIX/REPO). The body, a page of tag names, is held
// until flush.
type tagListName struct {
	http.ResponseWriter
	name string
	code int
	body bytes.Buffer
}

// WriteHeader implements http.ResponseWriter.
func (t *tagListName) WriteHeader(code int) {
	if t.code == 0 {
		t.code = code
	}
}

// Write implements http.ResponseWriter.
func (t *tagListName) Write(b []byte) (int, error) {
	if t.code == 0 {
		t.code = http.StatusOK
	}
	return t.body.Write(b)
}

// flush writes the response, renamed when it is a tag list.
func (t *tagListName) flush() {
	body := t.body.Bytes()
	var list struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if t.code == http.StatusOK && json.Unmarshal(body, &list) == nil {
		list.Name = t.name
		if b, err := json.Marshal(list); err == nil {
			body = b
			t.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
	}
	if t.code == 0 {
		t.code = http.StatusOK
	}
	t.ResponseWriter.WriteHeader(t.code)
	_, _ = t.ResponseWriter.Write(body)
}
