package server

// This file adds what OCI distribution-spec 1.1 asks of a registry and
// distribution v3.1.2 does not do: the referrers API
// (GET /v2/<name>/referrers/<digest>) and the OCI-Subject header on manifest
// pushes. It is an http.Handler in front of distribution's App, not a change
// to it; every other request passes through untouched.
//
// Where the referrers come from. The list is not kept in an index of its own:
// it is derived, on each request, from the repository's manifest revisions
// as distribution's storage package enumerates them (the same revision links
// that manifest GET by digest, DELETE and garbage collection use). That way
//   - it works on every storage driver, in memory and on disk alike, and
//     survives restarts with nothing extra written;
//   - it can never drift from the manifests: a manifest put by digest or tag,
//     deleted, removed by gc, imported offline by `ferry storage import`, or
//     written by the reference registry serving the same root is in (or out
//     of) the list as soon as its revision link is;
//   - manifests pushed before the API existed, including those listed by a
//     referrers-tag-schema index, are included, as the spec's "Enabling the
//     Referrers API" section requires.
// The cost is one walk of the repository's revision links per query. Parsing
// is paid once per manifest: manifests are content-addressed, so what a
// digest's manifest says about its subject never changes and is cached.
//
// Paging. The list is sorted by digest and cut into pages of at most
// referrersPageSize descriptors, and never more than a manifest may hold;
// a page that is not the last has a Link header (rel="next") to the rest,
// with `last` (the digest to continue after) and `n`, the tags list's
// parameters, which a client may also give itself.
//
// Deleted subjects. Deleting a manifest (ferry serve --delete) leaves its
// referrers: they are still listed under its digest and pullable by theirs
// until `ferry storage gc` removes them with what only they reference
// (store/regroot's markReferrers).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/distribution/distribution/v3/registry/auth"
	registrymiddleware "github.com/distribution/distribution/v3/registry/middleware/registry"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	ggtypes "github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/gorilla/mux"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/internal/regstorage/storedmanifest"
	"github.com/ferry-dev/ferry/mediatype"
)

const (
	// namespaceMiddleware is the name under which the registry middleware
	// that hands distribution's storage namespace to the OCI layer is
	// registered with distribution.
	namespaceMiddleware = "ferry-oci-namespace"
	// namespaceSinkKey is the middleware option holding the *namespaceSink.
	namespaceSinkKey = "sink"
	// maxManifestSize is distribution's own limit on a manifest body
	// (handlers.maxManifestBodySize); larger pushes are refused by it.
	maxManifestSize = storedmanifest.MaxSize
	// maxCachedManifests bounds the cache of parsed manifests.
	maxCachedManifests = 1 << 16
	// headerSubject and headerFiltersApplied are distribution-spec 1.1's
	// response headers.
	headerSubject        = "OCI-Subject"
	headerFiltersApplied = "OCI-Filters-Applied"
)

// namespaceSink receives distribution's storage namespace while its App is
// built. The App keeps the namespace private; a registry middleware is the
// hook distribution offers to see it.
type namespaceSink struct {
	ns distribution.Namespace
	// driver is the storage driver under ns, with the configuration's
	// storage middleware applied: the replica marker's (replicas.go).
	driver storagedriver.StorageDriver
}

var registerMiddleware = sync.OnceValue(func() error {
	err := registrymiddleware.Register(namespaceMiddleware, func(_ context.Context, ns distribution.Namespace, d storagedriver.StorageDriver, opts map[string]any) (distribution.Namespace, error) {
		sink, ok := opts[namespaceSinkKey].(*namespaceSink)
		if !ok {
			return nil, fmt.Errorf("server: registry middleware %s is ferry's own and cannot be configured", namespaceMiddleware)
		}
		sink.ns, sink.driver = ns, d
		return ns, nil
	})
	if err != nil {
		return fmt.Errorf("server: register registry middleware: %w", err)
	}
	return nil
})

// captureNamespace adds to cfg the registry middleware that fills the
// returned sink when handlers.NewApp builds its storage namespace. It runs
// after any registry middleware the configuration names and before a
// pull-through proxy, so the sink sees the local storage.
func captureNamespace(cfg *configuration.Configuration) (*namespaceSink, error) {
	if err := registerMiddleware(); err != nil {
		return nil, err
	}
	sink := &namespaceSink{}
	addMiddleware(cfg, "registry", namespaceMiddleware, configuration.Parameters{namespaceSinkKey: sink})
	return sink, nil
}

// ociLayer serves the referrers API and adds the OCI-Subject header, passing
// every other request to distribution.
type ociLayer struct {
	next      http.Handler
	ns        distribution.Namespace
	access    auth.AccessController // nil without authentication
	headers   http.Header           // configuration's http.headers
	manifests *mux.Router           // distribution's own routes
	referrers *mux.Router
	cache     manifestCache
	urls      *urlPolicy
	driver    storagedriver.StorageDriver // under ns, for alias links (digests.go)
}

// newOCILayer puts the OCI layer in front of next, distribution's App built
// from cfg, whose namespace sink has been filled.
func newOCILayer(next http.Handler, cfg *configuration.Configuration, sink *namespaceSink, urls *urlPolicy) (*ociLayer, error) {
	if sink.ns == nil {
		return nil, errors.New("server: distribution did not apply the referrers middleware")
	}
	l := &ociLayer{
		next:      next,
		ns:        sink.ns,
		headers:   cfg.HTTP.Headers,
		manifests: v2.RouterWithPrefix(cfg.HTTP.Prefix),
		referrers: mux.NewRouter(),
		cache:     manifestCache{m: map[digest.Digest]manifestFacts{}},
		urls:      urls,
		driver:    sink.driver,
	}
	// The same access controller distribution builds, so the referrers API
	// is guarded exactly as a manifest GET is.
	if t := cfg.Auth.Type(); t != "" && !strings.EqualFold(t, "none") {
		ac, err := auth.GetAccessController(t, cfg.Auth.Parameters())
		if err != nil {
			return nil, fmt.Errorf("server: configure %s authorization: %w", t, err)
		}
		l.access = ac
	}
	r := l.referrers
	if cfg.HTTP.Prefix != "" {
		r = r.PathPrefix(cfg.HTTP.Prefix).Subrouter()
	}
	r.Path("/v2/{name:" + reference.NameRegexp.String() + "}/referrers/{digest}")
	return l, nil
}

// ServeHTTP implements http.Handler.
func (l *ociLayer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var m mux.RouteMatch
	if l.referrers.Match(r, &m) {
		l.serveReferrers(w, r, m.Vars["name"], m.Vars["digest"])
		return
	}
	if !l.manifests.Match(r, &m) {
		l.next.ServeHTTP(w, r)
		return
	}
	w, r, ok := l.digests(w, r, &m) // digests.go
	if !ok {
		return
	}
	if r.Method == http.MethodPut && m.Route.GetName() == v2.RouteNameManifest {
		l.putManifest(w, r, m.Vars["name"])
		return
	}
	l.next.ServeHTTP(w, r)
}

// putManifest passes a manifest push to distribution and, when the manifest
// has a subject and distribution stores it, answers with OCI-Subject. A
// manifest whose foreign URLs distribution would refuse is refused here,
// with 400 and the reason (foreignurls.go). The
// body is read ahead up to distribution's own limit; a larger one is passed
// on unread for distribution to refuse.
func (l *ociLayer) putManifest(w http.ResponseWriter, r *http.Request, name string) {
	if !l.mayPush(r, name) {
		// Not buffered for a client distribution is about to refuse.
		l.next.ServeHTTP(w, r)
		return
	}
	if body, ok := manifestBody(r); ok {
		if err := l.urls.check(r.Header.Get("Content-Type"), body); err != nil {
			serveError(w, errcode.ErrorCodeManifestInvalid.WithMessage(err.Error()))
			return
		}
		mt, _ := contentMediaType(r.Header.Get("Content-Type")) // "" if unparsable: the body's mediaType decides
		if facts, ok := parseManifest(mt, body); ok && facts.subject != "" {
			w = &hookWriter{ResponseWriter: w, before: func(code int) error {
				if code == http.StatusCreated {
					w.Header().Set(headerSubject, facts.subject.String())
				}
				return nil
			}}
		}
	}
	l.next.ServeHTTP(w, r)
}

// serveReferrers answers GET /v2/<name>/referrers/<digest>[?artifactType=T].
// A repository that does not exist has no referrers: the spec forbids a 404
// from a registry that supports the API, since clients take a 404 to mean
// "unsupported" and fall back to the referrers tag schema.
func (l *ociLayer) serveReferrers(w http.ResponseWriter, r *http.Request, name, dgst string) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	for k, vs := range l.headers {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		serveError(w, errcode.ErrorCodeUnsupported.WithDetail(r.Method))
		return
	}
	named, err := reference.WithName(name)
	if err != nil {
		serveError(w, errcode.ErrorCodeNameInvalid.WithDetail(err.Error()))
		return
	}
	if !l.authorized(w, r, name) {
		return
	}
	subject, err := digest.Parse(dgst)
	if err != nil {
		serveError(w, errcode.ErrorCodeDigestInvalid.WithDetail(err.Error()))
		return
	}
	refs, err := l.list(r.Context(), named, subject)
	if err != nil {
		serveError(w, errcode.ErrorCodeUnknown.WithDetail(err.Error()))
		return
	}
	q := r.URL.Query()
	if q.Has("artifactType") {
		types := q["artifactType"]
		refs = slices.DeleteFunc(refs, func(d ocispec.Descriptor) bool { return !slices.Contains(types, d.ArtifactType) })
		w.Header().Set(headerFiltersApplied, "artifactType")
	}
	page, next, err := referrersPage(refs, q)
	if err != nil {
		serveError(w, err)
		return
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: page}
	idx.SchemaVersion = 2
	body, err := json.Marshal(idx)
	if err != nil {
		serveError(w, errcode.ErrorCodeUnknown.WithDetail(err.Error()))
		return
	}
	if next != "" {
		q.Set("last", string(next))
		q.Set("n", strconv.Itoa(len(page)))
		u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
		w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="next"`, u.String()))
	}
	w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// referrersPageSize is the most descriptors one referrers response holds;
// a larger list is paged (Link). A variable for tests.
var referrersPageSize = 1000

// referrersPage cuts one page out of refs (sorted by digest), as the query
// asks: after the digest "last", at most "n" descriptors — the parameters
// of the tags list, which the spec's Link header for referrers leaves to
// the registry. A page is never more than referrersPageSize descriptors,
// nor, encoded, more than a registry accepts as a manifest (the spec: a
// Link "when the descriptor list cannot be returned in a single
// manifest"). next is the digest to continue after, "" on the last page.
func referrersPage(refs []ocispec.Descriptor, q url.Values) (page []ocispec.Descriptor, next digest.Digest, err error) {
	limit := referrersPageSize
	if q.Has("n") {
		n, err := strconv.Atoi(q.Get("n"))
		if err != nil || n < 0 {
			return nil, "", errcode.ErrorCodePaginationNumberInvalid.WithDetail(q.Get("n"))
		}
		limit = min(n, limit)
	}
	if limit == 0 {
		return []ocispec.Descriptor{}, "", nil
	}
	if q.Has("last") {
		last, err := digest.Parse(q.Get("last"))
		if err != nil {
			return nil, "", errcode.ErrorCodeDigestInvalid.WithDetail(err.Error())
		}
		i, _ := slices.BinarySearchFunc(refs, last, func(d ocispec.Descriptor, t digest.Digest) int {
			return strings.Compare(string(d.Digest), string(t))
		})
		if i < len(refs) && refs[i].Digest == last {
			i++
		}
		refs = refs[i:]
	}
	// The index around the descriptors, with room to spare.
	size := 256
	page = []ocispec.Descriptor{}
	for _, d := range refs {
		b, err := json.Marshal(d)
		if err != nil {
			return nil, "", errcode.ErrorCodeUnknown.WithDetail(err.Error())
		}
		if len(page) == limit || (len(page) > 0 && size+len(b)+1 > maxManifestSize) {
			return page, page[len(page)-1].Digest, nil
		}
		size += len(b) + 1
		page = append(page, d)
	}
	return page, "", nil
}

// authorized asks the access controller for pull access to name, answering
// the request itself (401 with a challenge, or 400) when it is refused.
func (l *ociLayer) authorized(w http.ResponseWriter, r *http.Request, name string) bool {
	if l.access == nil {
		return true
	}
	access := auth.Access{Resource: auth.Resource{Type: "repository", Name: name}, Action: "pull"}
	_, err := l.access.Authorized(r, access)
	if err == nil {
		return true
	}
	var ch auth.Challenge
	if errors.As(err, &ch) {
		ch.SetHeaders(r, w)
		serveError(w, errcode.ErrorCodeUnauthorized.WithDetail([]auth.Access{access}))
	} else {
		// As distribution does: no detail about a failing controller.
		w.WriteHeader(http.StatusBadRequest)
	}
	return false
}

// mayPush reports whether the request carries credentials for pushing to
// its repository; distribution checks them again and answers the request.
func (l *ociLayer) mayPush(r *http.Request, name string) bool {
	if l.access == nil {
		return true
	}
	res := auth.Resource{Type: "repository", Name: name}
	_, err := l.access.Authorized(r, auth.Access{Resource: res, Action: "pull"}, auth.Access{Resource: res, Action: "push"})
	return err == nil
}

// serveError writes err as a distribution-spec error body.
func serveError(w http.ResponseWriter, err error) {
	_ = errcode.ServeJSON(w, err)
}

// list returns the descriptors of the manifests in the repository whose
// subject is subject, in digest order, never nil.
func (l *ociLayer) list(ctx context.Context, named reference.Named, subject digest.Digest) ([]ocispec.Descriptor, error) {
	refs := []ocispec.Descriptor{}
	repo, err := l.ns.Repository(ctx, named)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", named.Name(), err)
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		return nil, fmt.Errorf("manifests of %s: %w", named.Name(), err)
	}
	enum, ok := ms.(distribution.ManifestEnumerator)
	if !ok {
		return nil, fmt.Errorf("manifests of %s cannot be enumerated", named.Name())
	}
	var mu sync.Mutex // drivers may walk in parallel
	seen := map[digest.Digest]bool{}
	err = enum.Enumerate(ctx, func(d digest.Digest) error {
		facts, err := l.facts(ctx, d)
		if err != nil || facts.subject != subject {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		// An alias revision (a manifest pushed by a sha512 digest)
		// enumerates as the canonical digest it links to: one entry.
		if !seen[d] {
			seen[d] = true
			refs = append(refs, facts.desc)
		}
		return nil
	})
	if err != nil && !errors.As(err, new(storagedriver.PathNotFoundError)) {
		return nil, fmt.Errorf("enumerate manifests of %s: %w", named.Name(), err)
	}
	slices.SortFunc(refs, func(a, b ocispec.Descriptor) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
	return refs, nil
}

// facts returns what manifest d says about its subject, from the cache or
// from storage. d is a revision the walk found linked in the repository;
// its bytes are read as stored, not through distribution's manifest
// service, which refuses content it no longer supports (schema1): anything
// parseManifest cannot read has no subject. So has a manifest whose bytes
// are gone (removed while the walk runs), or are larger than distribution
// accepts.
func (l *ociLayer) facts(ctx context.Context, d digest.Digest) (manifestFacts, error) {
	if f, ok := l.cache.get(d); ok {
		return f, nil
	}
	payload, err := storedmanifest.Read(ctx, l.ns, d)
	if errors.Is(err, distribution.ErrBlobUnknown) {
		return manifestFacts{}, nil
	}
	if err != nil && !errors.Is(err, blob.ErrTooLarge) {
		return manifestFacts{}, fmt.Errorf("read manifest %s: %w", d, err)
	}
	f := manifestFacts{}
	if err == nil {
		f, _ = parseManifest(storedMediaType(payload), payload)
	}
	f.desc.Digest = d
	l.cache.put(d, f)
	return f, nil
}

// storedMediaType is the media type distribution's manifest service gives
// a stored schema 2 manifest whose body has no mediaType: an OCI index when
// it has a manifests list, else an OCI image manifest. It is "" otherwise,
// leaving the body's own mediaType to decide.
func storedMediaType(payload []byte) string {
	var m struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Manifests     []json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(payload, &m) != nil || m.SchemaVersion != 2 || m.MediaType != "" {
		return ""
	}
	if m.Manifests != nil {
		return ocispec.MediaTypeImageIndex
	}
	return ocispec.MediaTypeImageManifest
}

// manifestFacts is what the referrers API needs from one manifest.
type manifestFacts struct {
	subject digest.Digest      // "" without a subject
	desc    ocispec.Descriptor // its descriptor in a referrers list, Digest aside
}

// parseManifest reads the subject and the referrers descriptor of an OCI
// image manifest or index (mediatype.ParseReferrer).
func parseManifest(mediaType string, payload []byte) (f manifestFacts, ok bool) {
	r, ok := mediatype.ParseReferrer(ggtypes.MediaType(mediaType), payload)
	if !ok {
		return manifestFacts{}, false
	}
	return manifestFacts{subject: digest.Digest(r.Subject), desc: ocispec.Descriptor{
		MediaType:    string(r.MediaType),
		Size:         int64(len(payload)),
		ArtifactType: r.ArtifactType,
		Annotations:  r.Annotations,
	}}, true
}

// manifestCache maps manifest digests to their facts. Entries never go stale
// (a digest names fixed bytes); the map is only bounded.
type manifestCache struct {
	mu sync.Mutex
	m  map[digest.Digest]manifestFacts
}

func (c *manifestCache) get(d digest.Digest) (manifestFacts, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.m[d]
	return f, ok
}

func (c *manifestCache) put(d digest.Digest, f manifestFacts) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedManifests {
		clear(c.m)
	}
	c.m[d] = f
}
