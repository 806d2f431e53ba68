package foreign

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/ferry-dev/ferry/internal/stall"
	"github.com/ferry-dev/ferry/internal/wait"
	"github.com/ferry-dev/ferry/version"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrAllURLsFailed means none of a descriptor's URLs yielded the blob.
	// Its message lists each URL and why it failed.
	ErrAllURLsFailed = errors.New("every URL failed")
	// ErrTooManyRedirects means a URL redirected more times than allowed
	// (see WithMaxRedirects).
	ErrTooManyRedirects = errors.New("too many redirects")
	// ErrStalled means a request was abandoned because no byte arrived
	// for the stall timeout (see WithStallTimeout).
	ErrStalled = stall.ErrStalled
)

// Event kinds.
const (
	// EventRedirect: a redirect to URL is being followed.
	EventRedirect = "redirect"
	// EventRetry: URL is requested again after Err, following a backoff.
	EventRetry = "retry"
	// EventResume: the connection to URL broke (Err) after Offset bytes;
	// the fetcher asks for the rest with a Range request.
	EventResume = "resume"
	// EventRestart: URL ignored the Range request and sends the whole blob
	// again; its first Offset bytes are read and dropped.
	EventRestart = "restart"
	// EventURLFailed: URL could not serve the blob (Err); the next URL is
	// tried.
	EventURLFailed = "url-failed"
)

// Event reports what the fetcher did, for progress display and
// diagnostics.
type Event struct {
	Kind   string // one of the Event* constants
	URL    string // redacted: no password
	Offset int64  // bytes of the blob already passed on, for resume and restart
	Err    error  // what went wrong, for retry, resume and url-failed
}

// Defaults.
const (
	defaultMaxRedirects = 10
	defaultRetries      = 5
	defaultBackoffBase  = 200 * time.Millisecond
	defaultBackoffMax   = 5 * time.Second
)

type options struct {
	allow        []string
	maxRedirects int
	retries      int
	backoff      wait.Backoff
	stall        time.Duration
	transport    *http.Transport
	userAgent    string
	events       func(Event)
	connections  int
}

// Option configures a Fetcher.
type Option func(*options) error

// WithAllow adds URL patterns (Go regular expressions, see NewPolicy)
// whose URLs may reach loopback and private addresses. It may be given
// several times.
func WithAllow(patterns ...string) Option {
	return func(o *options) error { o.allow = append(o.allow, patterns...); return nil }
}

// WithMaxRedirects bounds the redirects followed per request. The default
// is 10; 0 follows none.
func WithMaxRedirects(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return fmt.Errorf("max redirects must not be negative, got %d", n)
		}
		o.maxRedirects = n
		return nil
	}
}

// WithRetries sets the attempts per URL, and the consecutive reconnections
// without progress allowed after a dropped connection. The default is 5.
func WithRetries(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("retries must be at least 1, got %d", n)
		}
		o.retries = n
		return nil
	}
}

// WithBackoff sets the bounds of the exponential backoff (with jitter)
// between attempts. The default is 200ms to 5s. A Retry-After header on a
// 429 or 503 answer asking for longer takes precedence, up to 60s.
func WithBackoff(base, max time.Duration) Option {
	return func(o *options) error {
		if base <= 0 || max < base {
			return fmt.Errorf("backoff wants 0 < base <= max, got %s and %s", base, max)
		}
		o.backoff = wait.Backoff{Base: base, Max: max}
		return nil
	}
}

// WithStallTimeout sets how long a request may go without moving a byte
// (waiting for response headers included) before it is abandoned with an
// error naming its URL and wrapping ErrStalled. Open retries or resumes
// such a request; a request made through Client fails. The default is
// 60s; 0 disables the check.
func WithStallTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("stall timeout must not be negative, got %s", d)
		}
		o.stall = d
		return nil
	}
}

// WithTransport sets the transport whose settings (TLS configuration,
// proxy, timeouts) the fetcher clones. The fetcher replaces its dialers
// with its own, which applies the policy to every address it dials, and
// disables connection reuse, HTTP/2 and transparent decompression: a
// connection opened for an allowed URL must not serve another, and the
// bytes must be the blob's, not a decoding of them. The default is
// http.DefaultTransport.
func WithTransport(rt *http.Transport) Option {
	return func(o *options) error { o.transport = rt; return nil }
}

// WithUserAgent sets the User-Agent header. The default is
// version.UserAgent(), "ferry/VERSION (os/arch)".
func WithUserAgent(s string) Option {
	return func(o *options) error { o.userAgent = s; return nil }
}

// WithEvents receives fetcher events. fn is called synchronously from the
// goroutine calling Open, Read or the Client, possibly from several
// goroutines at once, and must not block. The default discards them.
func WithEvents(fn func(Event)) Option {
	return func(o *options) error {
		if fn == nil {
			fn = func(Event) {}
		}
		o.events = fn
		return nil
	}
}

// Fetcher streams foreign blobs from their URLs under a Policy, following
// redirects, retrying with backoff, resuming dropped connections with
// Range requests and verifying the content.
//
// It is ours, not go-containerregistry's, because that one's URL policy
// cannot be configured (see Policy) and it neither retries nor resumes.
// A Fetcher is safe for concurrent use. Make one with NewFetcher: the zero
// Fetcher fetches nothing.
type Fetcher struct {
	o      options
	policy *Policy
	client *http.Client
	// dialer checks every address it dials; direct dials only the proxy
	// a request was configured to go through.
	dialer, direct *net.Dialer
}

// NewFetcher returns a Fetcher.
func NewFetcher(opts ...Option) (*Fetcher, error) {
	o := options{
		maxRedirects: defaultMaxRedirects,
		retries:      defaultRetries,
		backoff:      wait.Backoff{Base: defaultBackoffBase, Max: defaultBackoffMax},
		stall:        stall.DefaultTimeout,
		userAgent:    version.UserAgent(),
		events:       func(Event) {},
		connections:  1,
	}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("foreign fetcher: %w", err)
		}
	}
	p, err := NewPolicy(o.allow)
	if err != nil {
		return nil, err
	}
	f := &Fetcher{o: o, policy: p}
	f.direct = &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	f.dialer = &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, ControlContext: p.control}

	t := baseTransport(o.transport)
	proxy := t.Proxy
	// The proxy is decided once per request, in RoundTrip, and travels in
	// its context so that the dialer knows which address is the proxy.
	t.Proxy = func(r *http.Request) (*url.URL, error) {
		if tg := targetFrom(r.Context()); tg != nil {
			return tg.proxy, nil
		}
		return nil, nil
	}
	// Every dialer the base transport may carry would bypass the policy.
	t.DialContext = f.dial
	t.DialTLSContext = nil
	t.DialTLS = nil
	t.Dial = nil
	// A pooled (or multiplexed HTTP/2) connection would carry a later
	// request past the dial-time check: each request dials afresh.
	t.DisableKeepAlives = true
	var protos http.Protocols
	protos.SetHTTP1(true)
	t.Protocols = &protos
	t.ForceAttemptHTTP2 = false
	// Without this, Go asks for gzip and silently decodes it, and a CDN
	// that labels a .tar.gz with Content-Encoding: gzip would hand over
	// bytes that are not the blob.
	t.DisableCompression = true

	f.client = &http.Client{
		Transport:     stall.Wrap(&policyTransport{policy: p, base: t, proxy: proxy, userAgent: o.userAgent}, o.stall),
		CheckRedirect: f.checkRedirect,
	}
	return f, nil
}

func baseTransport(rt *http.Transport) *http.Transport {
	if rt != nil {
		return rt.Clone()
	}
	return defaultTransport.Clone()
}

// defaultTransport is net/http's default transport as the process started
// with it: taken at init, because a mirror (server's userAgentDefault)
// later wraps http.DefaultTransport in a type of its own, for the
// requests distribution's proxy sends.
var defaultTransport = func() *http.Transport {
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		return dt.Clone()
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}()

// dial dials the proxy a request goes through as configured, and anything
// else through the policy check.
func (f *Fetcher) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if tg := targetFrom(ctx); tg != nil && tg.proxyAddr != "" && addr == tg.proxyAddr {
		return f.direct.DialContext(ctx, network, addr)
	}
	return f.dialer.DialContext(ctx, network, addr)
}

// policyTransport checks each request (the first and every redirect) and
// tells the dialer, through the request's context, which URL it dials
// for.
type policyTransport struct {
	policy *Policy
	base   *http.Transport
	proxy  func(*http.Request) (*url.URL, error)
	// userAgent goes on every request that names none, so that a caller
	// of Client (imagemod's foreign layers) sends it too.
	userAgent string
}

func (t *policyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	fail := func(err error) (*http.Response, error) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	if err := t.policy.CheckURL(req.URL); err != nil {
		return fail(err)
	}
	tg := t.policy.target(req.URL)
	if t.proxy != nil {
		pu, err := t.proxy(req)
		if err != nil {
			return fail(fmt.Errorf("choosing a proxy for %s: %w", req.URL.Redacted(), err))
		}
		if pu != nil {
			tg.proxy, tg.proxyAddr = pu, proxyAddr(pu)
			if !tg.allowed {
				if err := t.policy.checkResolved(req.Context(), req.URL); err != nil {
					return fail(err)
				}
			}
		}
	}
	out := req.WithContext(context.WithValue(req.Context(), targetKey{}, tg))
	if out.Header.Get("User-Agent") == "" {
		out.Header = out.Header.Clone()
		if out.Header == nil {
			out.Header = http.Header{}
		}
		out.Header.Set("User-Agent", t.userAgent)
	}
	return t.base.RoundTrip(out)
}

// proxyAddr is the address the transport dials to reach proxy u.
func proxyAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "socks5", "socks5h":
			port = "1080"
		default:
			port = "80"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// checkResolved is the best the policy can do for a request sent through
// a proxy, which resolves and dials the destination itself: resolve the
// name here and refuse it if any address is internal. When the name does
// not resolve here (proxied networks often cannot), the proxy decides.
func (p *Policy) checkResolved(ctx context.Context, u *url.URL) error {
	host := u.Hostname()
	if _, err := netip.ParseAddr(host); err == nil {
		return nil // an IP literal: CheckURL judged it
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if class := internal(a); class != "" {
			return fmt.Errorf("%w: %s: its host resolves to %s, a %s address; %s", ErrURLRefused, u.Redacted(), a, class, howToAllow)
		}
	}
	return nil
}

func (f *Fetcher) checkRedirect(req *http.Request, via []*http.Request) error {
	from := via[len(via)-1].URL.Redacted()
	if len(via) > f.o.maxRedirects {
		return fmt.Errorf("%w: %s redirected to %s after %d redirects (at most %d are followed)", ErrTooManyRedirects, from, req.URL.Redacted(), len(via)-1, f.o.maxRedirects)
	}
	if err := f.policy.CheckURL(req.URL); err != nil {
		return fmt.Errorf("redirect from %s: %w", from, err)
	}
	f.o.events(Event{Kind: EventRedirect, URL: req.URL.Redacted()})
	return nil
}

// Client returns an HTTP client applying the policy, for other code that
// follows foreign URLs: every request it makes, and every redirect, is
// checked (scheme, IP literal, the address actually dialed unless an
// allow pattern matches that request's URL) and at most the configured
// number of redirects is followed, and a request (each hop of a redirect)
// during which no byte moves for the stall timeout is abandoned with an
// error wrapping ErrStalled. It does not verify content, retry or resume.
func (f *Fetcher) Client() *http.Client {
	if f == nil || f.client == nil {
		return &http.Client{Transport: refuseAll{}}
	}
	return f.client
}

// refuseAll is the transport of a Fetcher not made by NewFetcher.
type refuseAll struct{}

func (refuseAll) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	return nil, errNoFetcher
}
