package server

// This file makes ferry serve a pull-through mirror (ferry serve --proxy):
// the options, the upstreams and how a request names one. The caching of
// manifests, tags and ordinary blobs is distribution's own proxy
// (registry/proxy, NewRegistryPullThroughCache), one per upstream, built
// over the local storage; proxyrepo.go adds what it lacks (tag freshness,
// read-only offline service), proxyforeign.go the foreign blobs it cannot
// fetch, proxylocalize.go --proxy-foreign localize.
//
// What is stored where. Every upstream's content is cached in the local
// storage under a repository prefix of its own, its name made a valid
// path component ("mcr.microsoft.com", "127.0.0.1_5000"): the mirror's
// mcr.microsoft.com/windows/servercore is upstream mcr.microsoft.com's
// windows/servercore, however the request named it (?ns=, path prefix, or
// nothing when the mirror has one upstream).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	registrymiddleware "github.com/distribution/distribution/v3/registry/middleware/registry"
	"github.com/distribution/distribution/v3/registry/proxy"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/singleflight"

	"github.com/ferry-dev/ferry/foreign"
	"github.com/ferry-dev/ferry/internal/pingcache"
	"github.com/ferry-dev/ferry/internal/redact"
	"github.com/ferry-dev/ferry/internal/stall"
	"github.com/ferry-dev/ferry/version"
)

// DefaultProxyTTL is how long a mirror serves a tag it has checked
// upstream before checking it again, unless WithProxyTTL says otherwise.
const DefaultProxyTTL = 5 * time.Minute

const (
	// mirrorMiddleware is the name of the registry middleware that puts
	// the mirror's namespace in front of the local storage.
	mirrorMiddleware = "ferry-mirror"
	mirrorKey        = "mirror"
	// buildWait bounds how long a request waits for an upstream's
	// proxy to be built (distribution asks the upstream's /v2/ first);
	// past it the request is served from the cache.
	buildWait = 5 * time.Second
	// rebuildAfter is how long an upstream's proxy is used before it is
	// built again, so that credentials from a helper are asked for
	// again; retryAfter is how long after a failed build (upstream
	// unreachable) the next is tried.
	rebuildAfter = 10 * time.Minute
	retryAfter   = 10 * time.Second
)

// Upstream is a registry a mirror pulls through.
type Upstream struct {
	// Name is how requests name it: ?ns=NAME (containerd's hosts.toml
	// mirrors) or a first path component (MIRROR/NAME/REPO). The
	// default is URL's host[:port].
	Name string
	// URL is the registry's base URL, http:// or https://HOST[:PORT].
	URL string
	// Username and Password, when Username is set, are the credentials
	// for it; otherwise they come from the docker config and credential
	// helpers (authn.DefaultKeychain), as ferry copy finds them.
	Username, Password string
}

// ParseUpstream reads the --proxy flag's value: URL or NAME=URL.
func ParseUpstream(s string) (Upstream, error) {
	var u Upstream
	if i := strings.Index(s, "="); i >= 0 && !strings.Contains(s[:i], "://") {
		u.Name, s = s[:i], s[i+1:]
		if u.Name == "" {
			return Upstream{}, fmt.Errorf("--proxy =%s: empty NAME before =", redact.URL(s))
		}
	}
	u.URL = s
	return u, nil
}

// proxyOptions is what the proxy options set.
type proxyOptions struct {
	upstreams []Upstream
	ttl       time.Duration
	allow     []string
	localize  bool
}

// WithProxy makes the registry a read-only pull-through mirror of the
// upstreams: a manifest, tag or blob it does not hold is fetched from the
// upstream the request names, stored, and served from storage afterwards,
// also when the upstream can no longer be reached. Foreign layers the
// upstream does not hold are fetched from their URLs (see
// WithProxyForeignAllow). It may be given once, with one or more
// upstreams whose names differ.
func WithProxy(ups ...Upstream) Option {
	return func(o *options) error {
		if len(ups) == 0 {
			return errors.New("server: --proxy names no upstream")
		}
		if o.proxy == nil {
			o.proxy = &proxyOptions{ttl: DefaultProxyTTL}
		}
		o.proxy.upstreams = append(o.proxy.upstreams, ups...)
		_, err := newUpstreams(o.proxy.upstreams)
		return err
	}
}

// WithProxyTTL sets how long a tag the mirror has checked upstream is
// served without checking it again (DefaultProxyTTL unless set; 0 checks
// on every request). Content named by digest never expires.
func WithProxyTTL(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("server: --proxy-ttl must not be negative, got %s", d)
		}
		if o.proxy == nil {
			return errors.New("server: --proxy-ttl needs --proxy")
		}
		o.proxy.ttl = d
		return nil
	}
}

// WithProxyForeignAllow sets the patterns (Go regular expressions
// matched against the whole URL) whose foreign-layer URLs the mirror may
// fetch from loopback and private addresses, as ferry copy's
// --foreign-allow. Without one, only public http(s) addresses are
// fetched, checked on the address dialed and on every redirect.
func WithProxyForeignAllow(patterns ...string) Option {
	return func(o *options) error {
		if o.proxy == nil {
			return errors.New("server: --foreign-allow needs --proxy")
		}
		if _, err := foreign.NewPolicy(patterns); err != nil {
			return fmt.Errorf("server: %w", err)
		}
		o.proxy.allow = append(o.proxy.allow, patterns...)
		return nil
	}
}

// WithProxyLocalize makes a mirror's tags resolve to localized manifests
// (--proxy-foreign localize): foreign layers made ordinary, their urls
// dropped, an index rewritten to match. A manifest asked for by its
// upstream digest is served unchanged.
func WithProxyLocalize(on bool) Option {
	return func(o *options) error {
		if o.proxy == nil {
			return errors.New("server: --proxy-foreign needs --proxy")
		}
		o.proxy.localize = on
		return nil
	}
}

// upstream is one configured upstream and its proxy, built on first use.
type upstream struct {
	Upstream
	prefix    string // repository prefix in the local storage
	dockerHub bool   // one-component names get library/

	mu       sync.Mutex
	px       distribution.Namespace // nil until built
	builtAt  time.Time
	failedAt time.Time
	building chan struct{} // non-nil while a build runs

	checkedMu sync.Mutex
	checked   map[string]time.Time // "repo:tag" -> last checked upstream

	keychain  authn.Keychain
	stall     time.Duration // a blob download that moves no byte for it is abandoned
	clientsMu sync.Mutex
	clients   map[string]blobClient // by upstream repository (proxyblobs.go)
	// clientBuilds builds each repository's client once at a time.
	clientBuilds singleflight.Group
}

// newUpstreams checks ups and indexes them.
func newUpstreams(ups []Upstream) ([]*upstream, error) {
	var out []*upstream
	names, prefixes := map[string]bool{}, map[string]bool{}
	for _, up := range ups {
		u, err := url.Parse(up.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("server: --proxy %s: want http(s)://HOST[:PORT] or NAME=http(s)://HOST[:PORT]", redact.URL(up.URL))
		}
		if u.User != nil {
			return nil, fmt.Errorf("server: --proxy %s: credentials do not go in the URL; use ferry login or --proxy-username", redact.URL(up.URL))
		}
		if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("server: --proxy %s: a registry's base URL has no path or query", up.URL)
		}
		if up.Name == "" {
			up.Name = u.Host
		}
		up.URL = u.Scheme + "://" + u.Host
		p := strings.ToLower(strings.ReplaceAll(up.Name, ":", "_"))
		if _, err := reference.WithName(p + "/x"); err != nil {
			return nil, fmt.Errorf("server: --proxy %s=%s: the name cannot be a repository path component (letters, digits, '.', '-', '_', ':')", up.Name, up.URL)
		}
		if names[up.Name] || prefixes[p] {
			return nil, fmt.Errorf("server: --proxy %s given twice", up.Name)
		}
		names[up.Name], prefixes[p] = true, true
		host := u.Hostname()
		out = append(out, &upstream{
			Upstream:  up,
			prefix:    p,
			dockerHub: up.Name == "docker.io" || host == "registry-1.docker.io" || host == "index.docker.io",
			checked:   map[string]time.Time{},
		})
	}
	return out, nil
}

// mirror is the mirror's state: its upstreams, the local storage and the
// foreign fetcher. It is the registry middleware's namespace
// (distribution.Namespace) and the front handler's (proxyforeign.go).
type mirror struct {
	ctx        context.Context // the server's: ends downloads on shutdown
	background *sync.WaitGroup // counts the downloads, for the server's Close
	pending    sync.Map        // store key -> chan struct{} closed when that store, and any earlier of the key, ends
	local      distribution.Namespace
	driver     storagedriver.StorageDriver
	ups        []*upstream
	ttl        time.Duration
	localize   bool
	keychain   authn.Keychain
	fetcher    *foreign.Fetcher
	flights    flights
	facts      foreignFacts
	loc        localized
}

// newMirror builds the mirror the options describe; it gets its local
// storage when distribution applies the registry middleware. Its blob
// downloads, from the upstreams and from foreign URLs, are abandoned
// when no byte moves for stallTimeout (the server's WithStallTimeout).
func newMirror(ctx context.Context, o *proxyOptions, stallTimeout time.Duration, background *sync.WaitGroup) (*mirror, error) {
	ups, err := newUpstreams(o.upstreams)
	if err != nil {
		return nil, err
	}
	f, err := foreign.NewFetcher(foreign.WithAllow(o.allow...), foreign.WithStallTimeout(stallTimeout))
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	useUserAgent()
	proxyStall.Store(int64(stallTimeout))
	m := &mirror{ctx: ctx, background: background, ups: ups, ttl: o.ttl, localize: o.localize, keychain: authn.DefaultKeychain, fetcher: f}
	for _, u := range ups {
		u.keychain, u.stall = m.keychain, stallTimeout
	}
	return m, nil
}

// useUserAgent gives the requests distribution's proxy sends upstream
// (manifests, tags, its /v2/ ping and token requests) ferry's
// User-Agent, and a stall watch (proxyStall). distribution offers no way
// to give its proxy a transport: NewRegistryPullThroughCache and its
// repositories use net/http.DefaultTransport (and http.Get), so the
// mirror wraps that, once per process, with a transport that sets the
// header on requests that carry none. The mirror's own requests
// (proxyblobs.go, the foreign fetcher) set it themselves.
var useUserAgent = sync.OnceFunc(func() {
	http.DefaultTransport = userAgentDefault{upstreamPings.Transport(http.DefaultTransport)}
})

// proxyStall is how long a request distribution's proxy sends upstream
// may move no byte before it is abandoned (internal/stall): the stall
// timeout of the mirror started last (one per process but in tests).
// distribution asks with the client's context, or, for its pings, with
// none (http.Get): an upstream that took such a request and said nothing
// held a client past any cached answer, or its proxy's build for ever.
var proxyStall atomic.Int64

// pingFresh is how long an upstream's answer to a ping (GET /v2/) is
// taken to be its answer again (upstreamPings).
const pingFresh = 30 * time.Second

// upstreamPings keeps the upstreams' answers to pings, for distribution's
// proxy (through net/http's default transport, useUserAgent) and for the
// mirror's own blob clients (upstream.client). The proxy asks /v2/ before
// every tag and manifest it fetches until it has a challenge for the
// upstream; one that needs no authentication (an anonymous registry)
// never gives one, so each manifest a client pulled cost two more round
// trips to it. The blob clients ask it once per repository; with the
// proxy's answer, a cold pull's first blob does not wait for a ping.
var upstreamPings = &pingcache.Cache{TTL: pingFresh, Challenges: true}

// userAgentDefault sets ferry's User-Agent on requests without one.
type userAgentDefault struct{ http.RoundTripper }

// RoundTrip implements http.RoundTripper.
func (t userAgentDefault) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("User-Agent") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("User-Agent", version.UserAgent())
	}
	return stall.Wrap(t.RoundTripper, time.Duration(proxyStall.Load())).RoundTrip(r)
}

// reachable reports whether the upstream's proxy was built, that is,
// whether its /v2/ answered when last asked.
func (u *upstream) reachable() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.px != nil
}

var registerMirror = sync.OnceValue(func() error {
	err := registrymiddleware.Register(mirrorMiddleware, func(_ context.Context, ns distribution.Namespace, d storagedriver.StorageDriver, opts map[string]any) (distribution.Namespace, error) {
		m, ok := opts[mirrorKey].(*mirror)
		if !ok {
			return nil, fmt.Errorf("server: registry middleware %s is ferry's own and cannot be configured", mirrorMiddleware)
		}
		m.local, m.driver = ns, d
		return m, nil
	})
	if err != nil {
		return fmt.Errorf("server: register registry middleware: %w", err)
	}
	return nil
})

// useMirror adds the mirror to cfg as the last registry middleware, so
// that it sits in front of the local storage (and of the namespace the
// OCI layer captures). A configuration that is itself a proxy
// (proxy.remoteurl) is refused: one mirror, configured one way.
func useMirror(cfg *configuration.Configuration, m *mirror) error {
	if cfg.Proxy.RemoteURL != "" {
		return errors.New("server: --proxy and a config file's proxy.remoteurl both make a mirror; give one")
	}
	if err := registerMirror(); err != nil {
		return err
	}
	addMiddleware(cfg, "registry", mirrorMiddleware, configuration.Parameters{mirrorKey: m})
	return nil
}

// Scope implements distribution.Namespace.
func (m *mirror) Scope() distribution.Scope { return distribution.GlobalScope }

// Repositories implements distribution.Namespace: what is cached.
func (m *mirror) Repositories(ctx context.Context, repos []string, last string) (int, error) {
	return m.local.Repositories(ctx, repos, last)
}

// Blobs implements distribution.Namespace.
func (m *mirror) Blobs() distribution.BlobEnumerator { return m.local.Blobs() }

// BlobStatter implements distribution.Namespace.
func (m *mirror) BlobStatter() distribution.BlobStatter { return m.local.BlobStatter() }

// Repository implements distribution.Namespace. name is a local name,
// PREFIX/REPO (the front handler makes every request's name one): the
// repository pulls through the upstream PREFIX names, or, while that
// upstream cannot be reached, serves what is cached, read-only.
func (m *mirror) Repository(ctx context.Context, named reference.Named) (distribution.Repository, error) {
	up, rest := m.split(named.Name())
	if up == nil || rest == "" {
		return nil, distribution.ErrRepositoryUnknown{Name: named.Name()}
	}
	remote, err := reference.WithName(rest)
	if err != nil {
		return nil, distribution.ErrRepositoryNameInvalid{Name: named.Name(), Reason: err}
	}
	local, err := m.local.Repository(ctx, named)
	if err != nil {
		return nil, err
	}
	var repo distribution.Repository
	if px := up.proxy(ctx, m); px != nil {
		if repo, err = px.Repository(ctx, remote); err != nil {
			return nil, err
		}
	}
	return m.newRepo(up, named, local, repo), nil
}

// split finds the upstream a local name's first component names.
func (m *mirror) split(local string) (*upstream, string) {
	first, rest, _ := strings.Cut(local, "/")
	for _, u := range m.ups {
		if u.prefix == first {
			return u, rest
		}
	}
	return nil, ""
}

// route turns the repository name a request gives (and its ?ns= value)
// into the local name. ok is false when no upstream is named: ns names
// none, or (without ns) the first component names none and there are
// several upstreams.
func (m *mirror) route(ns, name string) (string, bool) {
	var up *upstream
	rest := name
	if ns != "" {
		for _, u := range m.ups {
			if u.Name == ns || u.prefix == ns {
				up = u
			}
		}
	} else {
		first, after, found := strings.Cut(name, "/")
		for _, u := range m.ups {
			if found && (u.Name == first || u.prefix == first) {
				up, rest = u, after
			}
		}
		if up == nil && len(m.ups) == 1 {
			up = m.ups[0]
		}
	}
	if up == nil {
		return "", false
	}
	if up.dockerHub && !strings.Contains(rest, "/") {
		rest = "library/" + rest
	}
	return up.prefix + "/" + rest, true
}

// proxy returns the upstream's distribution proxy over the local
// storage, building it when there is none (or it is due for new
// credentials). It returns nil when the upstream cannot be reached now:
// building asks its /v2/ for its authentication challenge, and is retried
// at most every retryAfter.
func (u *upstream) proxy(ctx context.Context, m *mirror) distribution.Namespace {
	u.mu.Lock()
	px, ch := u.px, u.building
	due := (px == nil || time.Since(u.builtAt) >= rebuildAfter) && time.Since(u.failedAt) >= retryAfter
	if ch == nil && due {
		ch = make(chan struct{})
		u.building = ch
		go u.build(m, ch)
	}
	u.mu.Unlock()
	if px != nil || ch == nil {
		return px // a stale proxy serves while a new one is built
	}
	t := time.NewTimer(buildWait)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.px
}

// build builds the upstream's proxy and closes done.
func (u *upstream) build(m *mirror, done chan struct{}) {
	defer close(done)
	never := time.Duration(0) // distribution's cache expiry: off, the mirror keeps what it fetched
	cfg := configuration.Proxy{RemoteURL: u.URL, TTL: &never}
	cfg.Username, cfg.Password = u.credentials(m.keychain)
	px, err := proxy.NewRegistryPullThroughCache(m.ctx, prefixed{m.local, u.prefix, m}, m.driver, cfg)
	u.mu.Lock()
	defer u.mu.Unlock()
	u.building = nil
	if err != nil {
		u.failedAt = time.Now()
		return
	}
	u.px, u.builtAt = px, time.Now()
}

// credentials returns the upstream's user name and password: the
// configured ones, else the keychain's for its host. A keychain entry
// holding only an identity token gives none: distribution's proxy speaks
// basic and token authentication with a user name and password.
func (u *upstream) credentials(k authn.Keychain) (string, string) {
	if u.Username != "" {
		return u.Username, u.Password
	}
	host := strings.TrimPrefix(strings.TrimPrefix(u.URL, "https://"), "http://")
	if u.dockerHub {
		host = name.DefaultRegistry
	}
	reg, err := name.NewRegistry(host, name.Insecure)
	if err != nil {
		return "", ""
	}
	a, err := k.Resolve(reg)
	if err != nil {
		return "", ""
	}
	cfg, err := authn.Authorization(context.Background(), a)
	if err != nil || cfg == nil {
		return "", ""
	}
	return cfg.Username, cfg.Password
}

// prefixed is the local storage as an upstream's proxy sees it: its names
// are the upstream's, stored under the upstream's prefix, and what the
// proxy stores there (manifests and tags it fetched) is stored in the
// background (storeLater).
type prefixed struct {
	distribution.Namespace
	prefix string
	m      *mirror
}

// Repository implements distribution.Namespace.
func (p prefixed) Repository(ctx context.Context, named reference.Named) (distribution.Repository, error) {
	local, err := reference.WithName(p.prefix + "/" + named.Name())
	if err != nil {
		return nil, distribution.ErrRepositoryNameInvalid{Name: named.Name(), Reason: err}
	}
	repo, err := p.Namespace.Repository(ctx, local)
	if err != nil {
		return nil, err
	}
	return laterRepo{repo, p.m}, nil
}

// laterRepo is a cached repository whose manifest and tag writes are
// stored in the background: distribution's proxy stores a manifest it
// fetched (and the tag naming it) before it answers, and each of those
// writes fsyncs files and directories, which on a busy disk took longer
// than the pull itself. The client gets the manifest at once; the
// mirror's Close waits for the writes, and a lookup of the cached
// manifests (foreignLayer) waits for those under way.
type laterRepo struct {
	distribution.Repository
	m *mirror
}

// Manifests implements distribution.Repository.
func (r laterRepo) Manifests(ctx context.Context, opts ...distribution.ManifestServiceOption) (distribution.ManifestService, error) {
	ms, err := r.Repository.Manifests(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return laterManifests{ms, r.m, r.Named().Name()}, nil
}

// Tags implements distribution.Repository.
func (r laterRepo) Tags(ctx context.Context) distribution.TagService {
	return laterTags{r.Repository.Tags(ctx), r.m, r.Named().Name()}
}

// laterManifests stores manifests in the background.
type laterManifests struct {
	distribution.ManifestService
	m    *mirror
	repo string
}

// Put implements distribution.ManifestService.
func (s laterManifests) Put(ctx context.Context, mf distribution.Manifest, opts ...distribution.ManifestServiceOption) (digest.Digest, error) {
	_, payload, err := mf.Payload()
	if err != nil {
		return "", err
	}
	d := digest.FromBytes(payload)
	s.m.storeLater(ctx, manifestKey(s.repo, d), fmt.Sprintf("manifest %s of %s", d, s.repo), func(ctx context.Context) error {
		_, err := s.ManifestService.Put(ctx, mf, opts...)
		return err
	})
	return d, nil
}

// Get implements distribution.ManifestService. A manifest on its way to
// the storage is waited for: distribution's proxy, finding it missing,
// would fetch it again, and by tag when the request named one (its
// client's WithTag), which gets whatever the tag names upstream now, not
// the digest asked for.
func (s laterManifests) Get(ctx context.Context, d digest.Digest, opts ...distribution.ManifestServiceOption) (distribution.Manifest, error) {
	mf, err := s.ManifestService.Get(ctx, d, opts...)
	if err != nil && s.m.waitStored(ctx, manifestKey(s.repo, d)) {
		return s.ManifestService.Get(ctx, d, opts...)
	}
	return mf, err
}

// Exists implements distribution.ManifestService, waiting as Get does.
func (s laterManifests) Exists(ctx context.Context, d digest.Digest) (bool, error) {
	ok, err := s.ManifestService.Exists(ctx, d)
	if err == nil && !ok && s.m.waitStored(ctx, manifestKey(s.repo, d)) {
		return s.ManifestService.Exists(ctx, d)
	}
	return ok, err
}

// laterTags stores tags in the background.
type laterTags struct {
	distribution.TagService
	m    *mirror
	repo string
}

// Tag implements distribution.TagService.
func (t laterTags) Tag(ctx context.Context, tag string, desc v1.Descriptor) error {
	t.m.storeLater(ctx, tagKey(t.repo, tag), fmt.Sprintf("tag %s:%s", t.repo, tag), func(ctx context.Context) error {
		return t.TagService.Tag(ctx, tag, desc)
	})
	return nil
}

// storeLater runs store in the background, under ctx without its
// cancellation (the request's end does not stop it), logging a failure
// naming what; waitStored(key) waits for it. A store of a key already
// being stored replaces the earlier in pending, and its channel closes
// only once the earlier's has: waiting for the latest waits for all.
func (m *mirror) storeLater(ctx context.Context, key, what string, store func(context.Context) error) {
	done := make(chan struct{})
	prev, _ := m.pending.Swap(key, done)
	m.background.Add(1)
	go func() {
		defer m.background.Done()
		defer func() {
			if prev != nil {
				<-prev.(chan struct{})
			}
			m.pending.CompareAndDelete(key, done)
			close(done)
		}()
		if err := store(context.WithoutCancel(ctx)); err != nil {
			logrus.Errorf("mirror: %s served but not stored: %v", what, err)
		}
	}()
}

// waitStored waits for the background store of key under way, if there
// is one, and reports whether there was (and it ended before ctx did).
func (m *mirror) waitStored(ctx context.Context, key string) bool {
	v, ok := m.pending.Load(key)
	if !ok {
		return false
	}
	select {
	case <-v.(chan struct{}):
		return true
	case <-ctx.Done():
		return false
	}
}

// manifestKey and tagKey name a manifest's and a tag's background store;
// repo is the local (prefixed) repository name.
func manifestKey(repo string, d digest.Digest) string { return "manifest " + repo + "@" + d.String() }
func tagKey(repo, tag string) string                  { return "tag " + repo + ":" + tag }

// settled waits for the manifest and tag stores under way when it was
// called (or until ctx ends); nothing when m is nil.
func (m *mirror) settled(ctx context.Context) {
	if m == nil {
		return
	}
	m.pending.Range(func(_, v any) bool {
		select {
		case <-v.(chan struct{}):
			return true
		case <-ctx.Done():
			return false
		}
	})
}
