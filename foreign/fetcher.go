package foreign

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/blob"
)

// ErrAllURLsFailed means none of a descriptor's URLs yielded the blob.
var ErrAllURLsFailed = errors.New("every URL failed")

// Event reports what the fetcher did, for progress and diagnostics.
type Event struct {
	Kind   string // "redirect", "retry", "resume", "restart", "url-failed"
	URL    string
	Offset int64
	Err    error
}

type options struct {
	allow        []string
	maxRedirects int
	retries      int
	base, max    time.Duration
	maxWait      time.Duration
	transport    *http.Transport
	userAgent    string
	events       func(Event)
}

// Option configures a Fetcher.
type Option func(*options) error

// WithAllow adds URL patterns allowed even though they reach loopback or
// private addresses.
func WithAllow(patterns ...string) Option {
	return func(o *options) error { o.allow = append(o.allow, patterns...); return nil }
}

// WithMaxRedirects bounds the redirects followed per request. The default
// is 10.
func WithMaxRedirects(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return fmt.Errorf("max redirects must not be negative, got %d", n)
		}
		o.maxRedirects = n
		return nil
	}
}

// WithRetries sets the attempts per URL (including resumes after a dropped
// connection). The default is 5.
func WithRetries(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("retries must be at least 1, got %d", n)
		}
		o.retries = n
		return nil
	}
}

// WithBackoff sets the exponential backoff bounds. The default is 200ms to
// 5s. Retry-After on 429 and 503 is honoured up to 60s.
func WithBackoff(base, max time.Duration) Option {
	return func(o *options) error { o.base, o.max = base, max; return nil }
}

// WithTransport sets the transport to clone; the fetcher installs its own
// dialer with the policy check.
func WithTransport(t *http.Transport) Option {
	return func(o *options) error { o.transport = t; return nil }
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(s string) Option {
	return func(o *options) error { o.userAgent = s; return nil }
}

// WithEvents receives fetcher events.
func WithEvents(fn func(Event)) Option {
	return func(o *options) error { o.events = fn; return nil }
}

// Fetcher streams foreign blobs from their URLs under a Policy.
//
// It is ours, not go-containerregistry's, because that one's URL policy
// cannot be configured (see Policy) and it neither resumes nor retries.
type Fetcher struct {
	o      *options
	policy *Policy
	client *http.Client
}

// NewFetcher returns a Fetcher.
func NewFetcher(opts ...Option) (*Fetcher, error) {
	o := &options{maxRedirects: 10, retries: 5, base: 200 * time.Millisecond, max: 5 * time.Second,
		maxWait: 60 * time.Second, userAgent: "ferry", events: func(Event) {}}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	p, err := NewPolicy(o.allow)
	if err != nil {
		return nil, err
	}
	var t *http.Transport
	if o.transport != nil {
		t = o.transport.Clone()
	} else {
		t = http.DefaultTransport.(*http.Transport).Clone()
	}
	t.Proxy = nil // the dial check must see the real destination
	// A pooled connection would skip the dial-time check for a later URL.
	t.DisableKeepAlives = true
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dd := *d
		dd.ControlContext = p.control
		return dd.DialContext(ctx, network, addr)
	}
	f := &Fetcher{o: o, policy: p}
	f.client = &http.Client{Transport: t, CheckRedirect: f.checkRedirect}
	return f, nil
}

// Client returns an HTTP client applying the policy to every request made
// with a context from PolicyContext.
func (f *Fetcher) Client() *http.Client { return f.client }

// PolicyContext prepares ctx for a request to u through Client.
func (f *Fetcher) PolicyContext(ctx context.Context, u string) context.Context {
	return context.WithValue(ctx, ctxKey{}, &dialState{url: u, allowed: f.policy.Allowed(u)})
}

func (f *Fetcher) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > f.o.maxRedirects {
		return fmt.Errorf("stopped after %d redirects at %s", f.o.maxRedirects, req.URL.Redacted())
	}
	if err := f.policy.CheckURL(req.URL); err != nil {
		return fmt.Errorf("redirect from %s: %w", via[len(via)-1].URL.Redacted(), err)
	}
	if st, ok := req.Context().Value(ctxKey{}).(*dialState); ok {
		st.url, st.allowed = req.URL.String(), f.policy.Allowed(req.URL.String())
	}
	f.o.events(Event{Kind: "redirect", URL: req.URL.Redacted()})
	return nil
}

// Open streams the blob desc describes from its URLs, in order. Open makes
// the first request, so that a blob no URL serves fails here; later
// failures surface through Read. The stream verifies size and digest and
// names the digest and URL when they do not match; a dropped connection
// resumes with a Range request (or restarts when Range is ignored).
func (f *Fetcher) Open(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
	if len(desc.URLs) == 0 {
		return nil, fmt.Errorf("blob %s: no urls to fetch it from: %w", desc.Digest, ErrAllURLsFailed)
	}
	var fails []error
	for _, u := range desc.URLs {
		s := &stream{f: f, ctx: ctx, desc: desc, url: u}
		if err := s.connect(0); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			f.o.events(Event{Kind: "url-failed", URL: u, Err: err})
			fails = append(fails, fmt.Errorf("  %s: %w", u, err))
			continue
		}
		vr, err := blob.NewReader(s, desc.Digest, desc.Size, u)
		if err != nil {
			s.Close()
			return nil, err
		}
		return &verified{Reader: vr, s: s}, nil
	}
	return nil, fmt.Errorf("blob %s: %w:\n%w", desc.Digest, ErrAllURLsFailed, errors.Join(fails...))
}

type verified struct {
	*blob.Reader
	s *stream
}

func (v *verified) Close() error { return v.s.Close() }

// stream reads one URL, reconnecting after a dropped connection.
type stream struct {
	f       *Fetcher
	ctx     context.Context
	desc    v1.Descriptor
	url     string
	body    io.ReadCloser
	off     int64 // bytes handed to the reader
	skip    int64 // bytes to discard after a restart from 0
	retries int
}

// permanentError marks failures that retrying the same URL cannot fix.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func (s *stream) connect(off int64) error {
	var lastErr error
	for attempt := 0; attempt < s.f.o.retries; attempt++ {
		if attempt > 0 {
			s.f.o.events(Event{Kind: "retry", URL: s.url, Offset: off, Err: lastErr})
			if err := sleep(s.ctx, s.f.backoff(attempt, lastErr)); err != nil {
				return err
			}
		}
		err := s.try(off)
		if err == nil {
			return nil
		}
		lastErr = err
		var pe permanentError
		if errors.As(err, &pe) || s.ctx.Err() != nil {
			return err
		}
	}
	return lastErr
}

type retryAfter struct {
	error
	d time.Duration
}

func (s *stream) try(off int64) error {
	u, err := url.Parse(s.url)
	if err != nil {
		return permanentError{fmt.Errorf("%w: %q is not a URL: %v", ErrURLRefused, s.url, err)}
	}
	if err := s.f.policy.CheckURL(u); err != nil {
		return permanentError{err}
	}
	ctx := s.f.PolicyContext(s.ctx, s.url)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return permanentError{err}
	}
	req.Header.Set("User-Agent", s.f.o.userAgent)
	if off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
	}
	resp, err := s.f.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrURLRefused) || strings.Contains(err.Error(), "redirects") {
			return permanentError{err}
		}
		return err
	}
	switch {
	case off > 0 && resp.StatusCode == http.StatusPartialContent:
		s.body, s.skip = resp.Body, 0
		return nil
	case resp.StatusCode == http.StatusOK:
		// A server that ignores Range sends the whole blob again: skip
		// what the reader already has.
		s.body, s.skip = resp.Body, off
		if off > 0 {
			s.f.o.events(Event{Kind: "restart", URL: s.url, Offset: off})
		}
		return nil
	}
	resp.Body.Close()
	err = fmt.Errorf("%s answered %s", s.url, resp.Status)
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return &retryAfter{error: err, d: parseRetryAfter(resp.Header.Get("Retry-After"))}
	case http.StatusRequestTimeout, http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout:
		return err
	}
	return permanentError{err}
}

func parseRetryAfter(s string) time.Duration {
	if s == "" {
		return 0
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(s); err == nil {
		return time.Until(t)
	}
	return 0
}

func (f *Fetcher) backoff(attempt int, last error) time.Duration {
	var ra *retryAfter
	if errors.As(last, &ra) && ra.d > 0 {
		return min(ra.d, f.o.maxWait)
	}
	d := f.o.base << (attempt - 1)
	if d > f.o.max || d <= 0 {
		d = f.o.max
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (s *stream) Read(p []byte) (int, error) {
	for {
		if s.body == nil {
			return 0, fmt.Errorf("blob %s from %s: not connected", s.desc.Digest, s.url)
		}
		n, err := s.body.Read(p)
		if s.skip > 0 && n > 0 {
			drop := min(int64(n), s.skip)
			s.skip -= drop
			copy(p, p[drop:n])
			n -= int(drop)
		}
		s.off += int64(n)
		if err == nil || errors.Is(err, io.EOF) {
			if n == 0 && err == nil {
				continue
			}
			return n, err
		}
		// The connection broke: resume from where the reader stands.
		s.body.Close()
		s.body = nil
		if s.ctx.Err() != nil {
			return n, s.ctx.Err()
		}
		if s.retries++; s.retries > s.f.o.retries {
			return n, fmt.Errorf("blob %s from %s: connection lost %d times, last: %w", s.desc.Digest, s.url, s.retries, err)
		}
		s.f.o.events(Event{Kind: "resume", URL: s.url, Offset: s.off, Err: err})
		if cerr := s.connect(s.off); cerr != nil {
			return n, fmt.Errorf("blob %s from %s: resume at byte %d: %w", s.desc.Digest, s.url, s.off, cerr)
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (s *stream) Close() error {
	if s.body != nil {
		return s.body.Close()
	}
	return nil
}
