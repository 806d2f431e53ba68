package server

// The mirror's front handler: it gives every request the local name of
// the repository it asks for (proxy.go's route), and fetches the blobs
// the storage does not hold (proxyblobs.go). A GET or HEAD for a blob
// goes through distribution first (authentication, then the storage);
// when distribution answers 404, the blob is fetched from the upstream,
// or, when the upstream does not hold it and a cached manifest of the
// repository lists it with urls, by ferry's foreign fetcher (URL policy
// checked on every address dialed and redirect, retries, resume, size and
// digest verified while streaming). A fetch that fails stores nothing
// and is answered 404 BLOB_UNKNOWN, naming neither URL nor reason (both
// are logged).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/distribution/reference"
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
			w = &tagListName{ResponseWriter: w, name: name, local: local}
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
// fetched from the upstream, else from the foreign URLs a cached manifest
// gives it (serveBlob). A server error (distribution's proxy answers 500
// when the upstream cannot be reached for what is not cached) becomes 404
// *_UNKNOWN saying so: the content is unknown to the mirror, and a client
// with other hosts tries the next.
//
// distribution serves blobs from the cache only (mirrorRepo.Blobs), so a
// server error on a blob is the cache's storage failing to read it: that
// is logged, and the blob is served as one not cached, through its
// download, which checks the storage again and else fetches it (a cache
// that cannot read its copy goes to the source).
func (l *mirrorLayer) serveRead(w http.ResponseWriter, r *http.Request, local, route, dgst string) {
	hw := &holdMiss{ResponseWriter: w}
	l.next.ServeHTTP(hw, r)
	if !hw.held {
		return
	}
	if route == v2.RouteNameBlob {
		if d, err := digest.Parse(dgst); err == nil {
			if hw.code != http.StatusNotFound {
				logrus.WithField("repository", local).WithField("digest", d).Errorf("mirror: %s %s: the cache could not read the blob, fetching it: %d %s", r.Method, r.URL.Path, hw.code, bytes.TrimSpace(hw.body))
			}
			clear(w.Header())
			l.m.serveBlob(w, r, local, d, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				l.serveCached(w, r, local, d)
			}))
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

// serveCached serves blob d of repository local from the cache, once its
// download has stored it: a server error (the storage failing to read it)
// is logged and answered 404 BLOB_UNKNOWN, as a blob the mirror cannot
// give is.
func (l *mirrorLayer) serveCached(w http.ResponseWriter, r *http.Request, local string, d digest.Digest) {
	hw := &holdMiss{ResponseWriter: w}
	l.next.ServeHTTP(hw, r)
	if !hw.held {
		return
	}
	if hw.code < 500 {
		hw.release()
		return
	}
	logrus.WithField("repository", local).WithField("digest", d).Errorf("mirror: %s %s: the cache could not read the blob: %d %s", r.Method, r.URL.Path, hw.code, bytes.TrimSpace(hw.body))
	clear(w.Header())
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	serveError(w, errcode.ErrorCodeBlobUnknown.WithMessage("the mirror's cache holds the blob but could not read it").WithDetail(d))
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
	m.settled(ctx)
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

// tagListName gives a tag list, and distribution's NAME_UNKNOWN for one,
// the repository name the client asked for, not the cache's
// (PREFIX/REPO). The body, a page of tag names, is held until flush.
type tagListName struct {
	http.ResponseWriter
	name  string // the repository as the client named it
	local string // its cache's name, PREFIX/REPO
	code  int
	body  bytes.Buffer
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
	switch {
	case t.code == http.StatusOK && json.Unmarshal(body, &list) == nil:
		list.Name = t.name
		if b, err := json.Marshal(list); err == nil {
			body = b
			t.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
	case t.code >= http.StatusBadRequest && t.name != t.local:
		// distribution's NAME_UNKNOWN details the name it looked up.
		local, _ := json.Marshal(t.local)
		name, _ := json.Marshal(t.name)
		body = bytes.ReplaceAll(body, local, name)
		t.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	if t.code == 0 {
		t.code = http.StatusOK
	}
	t.ResponseWriter.WriteHeader(t.code)
	_, _ = t.ResponseWriter.Write(body)
}
