// Package server embeds the reference OCI registry (distribution/distribution
// v3) as a library. Its on-disk layout is docker/registry's, so a root written
// by one can be served by the other.
//
// distribution panics on configuration errors and reads defaults only when it
// parses YAML itself; this package builds a complete configuration in Go,
// fills in the defaults a Go-built configuration lacks, and turns panics into
// errors.
package server

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/sirupsen/logrus"

	"github.com/ferry-dev/ferry/internal/regstorage/fsdriver"
	"github.com/ferry-dev/ferry/internal/regstorage/replicas"
	"github.com/ferry-dev/ferry/internal/regstorage/rootlock"
	"github.com/ferry-dev/ferry/internal/regstorage/urlrules"

	// Storage drivers and access controllers that configurations may name.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// DefaultForeignURLsAllow is the foreign-layer URL allow list used unless one
// is given: manifests whose foreign layers point at https URLs are accepted,
// so Windows images can be mirrored with their base layers left at Microsoft.
const DefaultForeignURLsAllow = `^https://`

type options struct {
	root       string
	inMemory   bool
	configFile string
	allow      []string // nil unless given (WithForeignURLs)
	deny       []string // nil unless given
	htpasswd   string
	deleteOK   bool
	logOut     io.Writer
	logLevel   string // "": the configuration file's, else error
	logFormat  string // logging.go
	secret     string
	s3         *S3
	proxy      *proxyOptions // nil unless a mirror (proxy.go)
	stall      time.Duration // timeouts.go
	idle       time.Duration
	// behindProxy: TLS ends at a proxy in front (listen.go).
	behindProxy bool
	loginBurst  int // logins.go
	loginEvery  time.Duration
	purgeAge    time.Duration // uploads.go
	purgeEvery  time.Duration // 0: by storage type
	purgeOff    bool          // a configuration file's uploadpurging.enabled: false
	purgeDry    bool          // a configuration file's uploadpurging.dryrun
	noUI        bool          // no web view at / and /ui/ (ui.go)
	// background counts the work that outlives a request (a mirror's
	// downloads, proxyblobs.go); Close waits for it.
	background sync.WaitGroup
	// beside counts what runs beside the server until it closes (the
	// upload purger, uploads.go); Close ends it and waits for it.
	beside sync.WaitGroup
}

// Option configures the embedded registry.
type Option func(*options) error

// WithRoot stores images on the filesystem under dir, in docker/registry's
// layout. The default is an in-memory store.
func WithRoot(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return errors.New("server: empty root directory")
		}
		o.root, o.inMemory = dir, false
		return nil
	}
}

// WithInMemory keeps everything in memory (the default).
func WithInMemory() Option {
	return func(o *options) error { o.root, o.inMemory = "", true; return nil }
}

// WithConfigFile reads a complete distribution configuration file. Options
// given after it override its fields.
func WithConfigFile(path string) Option {
	return func(o *options) error {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("server: config file: %w", err)
		}
		o.configFile = path
		return nil
	}
}

// WithForeignURLs sets the regular expressions that URLs of foreign layers in
// pushed manifests must match (allow) and must not match (deny). A nil list
// is not given: without a configuration file the default allow list is
// DefaultForeignURLsAllow and the deny list is empty; with one, a list given
// replaces the file's validation.manifests.urls list of that name, and a
// list not given leaves the file's.
func WithForeignURLs(allow, deny []string) Option {
	return func(o *options) error {
		if _, err := urlrules.New(allow, deny); err != nil {
			return fmt.Errorf("server: %w", err)
		}
		// Copies: distribution's NewApp rewrites the configuration's
		// lists in place.
		if allow != nil {
			o.allow = slices.Clone(allow)
		}
		if deny != nil {
			o.deny = slices.Clone(deny)
		}
		return nil
	}
}

// WithHTPasswd requires basic authentication checked against an htpasswd
// file (bcrypt entries).
func WithHTPasswd(path string) Option {
	return func(o *options) error {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("server: htpasswd file: %w", err)
		}
		o.htpasswd = path
		return nil
	}
}

// WithDelete enables the DELETE endpoints (off by default).
func WithDelete(enabled bool) Option {
	return func(o *options) error { o.deleteOK = enabled; return nil }
}

// WithLog sends the registry's log to w at the given logrus level; unless
// set, the configuration file's log.level counts, else "error". The
// default discards it.
func WithLog(w io.Writer, level string) Option {
	return func(o *options) error {
		if level != "" {
			if _, err := logrus.ParseLevel(level); err != nil {
				return fmt.Errorf("server: log level: %w", err)
			}
		}
		o.logOut, o.logLevel = w, level
		return nil
	}
}

// WithSecret sets http.secret, which signs upload state, unless a
// configuration file sets it. Replicas sharing a store must share it, and
// on shared storage (any driver but filesystem and inmemory) it is
// required; elsewhere the default is random per process.
func WithSecret(s string) Option {
	return func(o *options) error { o.secret = s; return nil }
}

func makeOptions(opts []Option) (*options, error) {
	o := &options{inMemory: true, logOut: io.Discard, stall: DefaultStallTimeout, idle: DefaultIdleTimeout,
		loginBurst: DefaultLoginBurst, loginEvery: DefaultLoginEvery, purgeAge: DefaultUploadAge}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Configuration builds the distribution configuration the options describe.
func Configuration(opts ...Option) (*configuration.Configuration, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	return o.configuration()
}

func (o *options) configuration() (*configuration.Configuration, error) {
	var cfg *configuration.Configuration
	if o.configFile != "" {
		var err error
		if cfg, err = parseConfigFile(o.configFile); err != nil {
			return nil, err
		}
		if err = o.takeOverPurging(cfg); err != nil { // uploads.go
			return nil, err
		}
	} else {
		cfg = &configuration.Configuration{Version: "0.1"}
		params := configuration.Parameters{}
		switch {
		case o.s3 != nil:
			cfg.Storage = o.s3.storage()
		case o.inMemory:
			cfg.Storage = configuration.Storage{"inmemory": params}
		default:
			cfg.Storage = configuration.Storage{"filesystem": configuration.Parameters{"rootdirectory": o.root}}
		}
		disableDistributionPurger(cfg) // uploads.go: ferry's purger runs
		cfg.Validation.Manifests.URLs.Allow = o.allow
		if o.allow == nil {
			cfg.Validation.Manifests.URLs.Allow = []string{DefaultForeignURLsAllow}
		}
		cfg.Validation.Manifests.URLs.Deny = o.deny
		// A Go-built configuration gets none of the YAML parser's defaults.
		cfg.Catalog.MaxEntries = 1000
		cfg.HTTP.Headers = http.Header{"X-Content-Type-Options": []string{"nosniff"}}
	}
	if o.configFile != "" {
		// Foreign URL lists given as options override the file's; the
		// default allow list does not.
		if o.allow != nil {
			cfg.Validation.Manifests.URLs.Allow = o.allow
		}
		if o.deny != nil {
			cfg.Validation.Manifests.URLs.Deny = o.deny
		}
	}
	if o.s3 != nil && o.configFile != "" {
		return nil, fmt.Errorf("server: S3 storage given both by options and by config file %s; describe it in one place", o.configFile)
	}
	if o.root != "" && o.configFile != "" {
		if fs, ok := cfg.Storage["filesystem"]; ok {
			fs["rootdirectory"] = o.root
		} else {
			return nil, fmt.Errorf("server: --root given but config file %s does not use filesystem storage", o.configFile)
		}
	}
	if o.htpasswd != "" {
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "ferry", "path": o.htpasswd}}
	}
	if o.deleteOK {
		cfg.Storage["delete"] = configuration.Parameters{"enabled": true}
	}
	if cfg.HTTP.Secret == "" {
		cfg.HTTP.Secret = o.secret
	}
	if err := checkSecret(cfg, cfg.HTTP.Secret != ""); err != nil {
		return nil, err
	}
	if cfg.HTTP.Secret == "" {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		cfg.HTTP.Secret = hex.EncodeToString(b)
	}
	return cfg, nil
}

// useWindowsSafeFilesystem adds internal/regstorage/fsdriver's storage middleware to
// a filesystem configuration, without which distribution's filesystem
// driver fails every push on Windows. It changes nothing elsewhere.
func useWindowsSafeFilesystem(cfg *configuration.Configuration) {
	if cfg.Storage.Type() != "filesystem" {
		return
	}
	for _, m := range cfg.Middleware["storage"] {
		if m.Name == fsdriver.MiddlewareName {
			return
		}
	}
	addMiddleware(cfg, "storage", fsdriver.MiddlewareName, nil)
}

// addMiddleware appends the middleware name, of kind "registry",
// "repository" or "storage", with its options to cfg.
func addMiddleware(cfg *configuration.Configuration, kind, name string, opts configuration.Parameters) {
	if cfg.Middleware == nil {
		cfg.Middleware = map[string][]configuration.Middleware{}
	}
	cfg.Middleware[kind] = append(cfg.Middleware[kind], configuration.Middleware{Name: name, Options: opts})
}

// NewHandler returns the registry as an http.Handler.
func NewHandler(ctx context.Context, opts ...Option) (http.Handler, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	cfg, err := o.configuration()
	if err != nil {
		return nil, err
	}
	h, _, err := newApp(ctx, cfg, o)
	return h, err
}

// newApp builds distribution's App from cfg behind the OCI layer. On
// shared storage it also runs the replica self-test (replicas.go), whose marker
// is refreshed until the returned Presence is closed or ctx is done.
func newApp(ctx context.Context, cfg *configuration.Configuration, o *options) (h http.Handler, p *replicas.Presence, err error) {
	// distribution's tracing exports to localhost:4318 unless told not to.
	if os.Getenv("OTEL_TRACES_EXPORTER") == "" {
		_ = os.Setenv("OTEL_TRACES_EXPORTER", "none")
	}
	if err := o.applyLog(cfg); err != nil { // logging.go
		return nil, nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			h, p, err = nil, nil, fmt.Errorf("server: invalid configuration: %v", r)
		}
	}()
	// The OCI 1.1 layer (referrers.go) sits in front of distribution.
	sink, err := captureNamespace(cfg)
	if err != nil {
		return nil, nil, err
	}
	useWindowsSafeFilesystem(cfg)
	writers, err := trackOpenWriters(cfg) // openwriters.go
	if err != nil {
		return nil, nil, err
	}
	urls, err := newURLPolicy(cfg)
	if err != nil {
		return nil, nil, err
	}
	logins, err := hardenLogins(cfg, o) // logins.go
	if err != nil {
		return nil, nil, err
	}
	var m *mirror
	if o.proxy != nil {
		if m, err = newMirror(ctx, o.proxy, o.stall, &o.background); err != nil {
			return nil, nil, err
		}
		if err = useMirror(cfg, m); err != nil {
			return nil, nil, err
		}
	}
	app := handlers.NewApp(ctx, cfg)
	oci, err := newOCILayer(app, cfg, sink, urls)
	if err != nil {
		return nil, nil, err
	}
	h = oci
	if m != nil {
		h = m.handler(h, cfg)
	}
	if !o.noUI {
		if h, err = newWebUI(h, oci, m); err != nil { // ui.go
			return nil, nil, err
		}
	}
	if largeWritesSafe(cfg.Storage.Type()) {
		h = largeReads(h)
	}
	h = logins.wrap(newGuard(h, cfg, sink.driver, writers)) // logins.go, hardening.go
	if p, err = announce(ctx, cfg, sink); err != nil {
		return nil, nil, err
	}
	o.startPurger(ctx, cfg, sink.driver, &o.beside) // uploads.go
	return h, p, nil
}

// Server is a running registry.
type Server struct {
	// URL is the base URL clients reach the registry at, e.g.
	// "http://127.0.0.1:5000"; loopback when it listens on every
	// address.
	URL string
	// URLs lists every base URL the registry is reached at: URL, then,
	// when it listens on every address, each interface's address.
	URLs []string
	// Addr is the address the listener is bound to.
	Addr string

	srv  *http.Server
	ln   net.Listener
	done chan error

	lock       *rootlock.Lock     // the storage root's, when on the filesystem
	presence   *replicas.Presence // the replica marker, on shared storage
	stopApp    context.CancelFunc // ends what runs beside the server
	background *sync.WaitGroup    // what outlives requests, waited for
	beside     *sync.WaitGroup    // what stopApp ends, waited for
	closeOnce  sync.Once
	closeErr   error
	closed     chan struct{} // closed once Close has finished
}

// DefaultAddr is the address a server listens on when neither the
// caller nor the configuration file gives one: loopback only.
const DefaultAddr = "127.0.0.1:5000"

// Start listens on addr ("127.0.0.1:0" picks a free port; "" the
// configuration file's http.addr, else DefaultAddr) and serves the
// registry until Close or until ctx is done.
func Start(ctx context.Context, addr string, opts ...Option) (*Server, error) {
	return StartTLS(ctx, addr, "", "", opts...)
}

// StartTLS is Start with TLS when certFile and keyFile are set (when
// neither is, the configuration file's http.tls certificate and key). The
// key pair is loaded before anything starts: when it cannot be, StartTLS
// returns an error naming both files, having locked nothing.
//
// Basic authentication (an htpasswd file) without TLS is refused unless
// addr is a loopback address or WithTLSTerminatedByProxy says TLS ends in
// front (ErrPlainAuth).
//
// A server storing on the local filesystem holds its root's lock until it
// stops, so that `ferry storage gc` refuses to run under it; a root
// another ferry process holds is refused.
func StartTLS(ctx context.Context, addr, certFile, keyFile string, opts ...Option) (*Server, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	cfg, err := o.configuration()
	if err != nil {
		return nil, err
	}
	// The key pair is loaded before anything starts, so that a server
	// that cannot serve TLS never runs, holds its root or announces
	// itself as a replica.
	var tlsConfig *tls.Config
	if certFile == "" && keyFile == "" {
		// The configuration file's, unless given.
		certFile, keyFile = cfg.HTTP.TLS.Certificate, cfg.HTTP.TLS.Key
	}
	if certFile != "" || keyFile != "" {
		if certFile == "" || keyFile == "" {
			return nil, errors.New("server: TLS needs both a certificate file and a key file")
		}
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("server: TLS certificate %s and key %s: %w", certFile, keyFile, err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	if addr == "" {
		addr = cmp.Or(cfg.HTTP.Addr, DefaultAddr)
	}
	if err := checkPlainAuth(ctx, cfg, addr, tlsConfig != nil, o.behindProxy); err != nil {
		return nil, err
	}
	lock, err := lockRoot(cfg)
	if err != nil {
		return nil, err
	}
	// appCtx ends the upload purger (uploads.go) when the server closes.
	appCtx, stopApp := context.WithCancel(ctx)
	h, presence, err := newApp(appCtx, cfg, o)
	if err != nil {
		stopApp()
		o.beside.Wait()
		_ = lock.Release()
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		stopApp()
		o.beside.Wait()
		_ = presence.Close(ctx)
		_ = lock.Release()
		return nil, fmt.Errorf("server: listen on %s: %w", addr, err)
	}
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	srv := o.newHTTPServer(h) // timeouts.go
	srv.TLSConfig = tlsConfig
	ln = stallListener{Listener: ln, d: o.stall}
	urls := reachableURLs(scheme, ln.Addr())
	s := &Server{
		Addr:       ln.Addr().String(),
		URL:        urls[0],
		URLs:       urls,
		srv:        srv,
		ln:         ln,
		done:       make(chan error, 1),
		lock:       lock,
		presence:   presence,
		stopApp:    stopApp,
		background: &o.background,
		beside:     &o.beside,
		closed:     make(chan struct{}),
	}
	go func() {
		var err error
		if tlsConfig != nil {
			// The certificate is in s.srv.TLSConfig.
			err = s.srv.ServeTLS(ln, "", "")
		} else {
			err = s.srv.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			// Close is under way: Wait returns once it has finished
			// and released the root.
			<-s.closed
			err = nil
		} else {
			// Serving failed: release the root and withdraw the
			// replica marker as Close does.
			_ = s.Close()
		}
		s.done <- err
	}()
	go func() {
		<-ctx.Done()
		_ = s.Close()
	}()
	return s, nil
}

// Host returns "host:port" as used in image references: URL's.
func (s *Server) Host() string {
	_, host, _ := strings.Cut(s.URL, "://")
	return host
}

// Close shuts the server down, letting requests in flight finish for up to
// ten seconds, then ends what runs beside it (the upload purger) and waits
// for it, and only then, on shared storage, deletes the replica's marker
// and releases the storage root: nothing of this server writes or deletes
// in the storage once another process (`ferry storage gc`) may hold it.
// Calling it again returns the first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.closeErr = s.srv.Shutdown(ctx)
		s.waitBackground(ctx)
		s.stopApp()
		s.beside.Wait()
		if err := s.presence.Close(ctx); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("server: %w", err)
		}
		if err := s.lock.Release(); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("server: %w", err)
		}
		close(s.closed)
	})
	return s.closeErr
}

// waitBackground waits for the work that outlives requests (a mirror's
// downloads, which store what they fetched) until ctx ends, then ends it
// and waits for it to clean up, so that the storage root is released
// with nothing half-written.
func (s *Server) waitBackground(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		s.background.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.stopApp()
		<-done
	}
}

// Wait blocks until the server stops and returns its error, if any.
func (s *Server) Wait() error { return <-s.done }
