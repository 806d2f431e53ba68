package foreign

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/internal/redact"
	"github.com/ferry-dev/ferry/internal/wait"
)

// Open streams the blob desc describes from its URLs, tried in order.
//
// Open makes the first request itself, so that a blob no URL serves fails
// here, with an error wrapping ErrAllURLsFailed that lists each URL and
// why; a URL answering 404, 410, 403 or another permanent error, or that
// the policy refuses, is abandoned at once, others after the configured
// retries with backoff (honouring Retry-After on 429 and 503).
//
// The returned stream verifies size and digest while streaming (it
// implements blob.Verifying): a mismatch fails the Read that completes
// the blob (or, at the latest, the one returning EOF) with an error
// naming the digest and URL and wrapping blob.ErrDigestMismatch or
// blob.ErrSizeMismatch. Once bytes have been passed on, a failing URL
// fails the stream: the next URL is not tried. A connection that breaks
// mid-blob is resumed with a Range request from the current offset; a
// server that ignores Range sends the blob again from the start and the
// bytes already passed on are read and dropped, never repeated. ctx
// governs the whole stream, not only Open. Memory use does not depend on
// the blob's size. The caller must Close the stream.
func (f *Fetcher) Open(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
	if f == nil || f.client == nil {
		return nil, fmt.Errorf("foreign blob %s: %w", desc.Digest, errNoFetcher)
	}
	if _, err := blob.NewHash(desc.Digest); err != nil {
		return nil, fmt.Errorf("foreign blob %s: %w", desc.Digest, err)
	}
	if len(desc.URLs) == 0 {
		return nil, fmt.Errorf("foreign blob %s: %w: the descriptor has no urls", desc.Digest, ErrAllURLsFailed)
	}
	var fails []error
	for _, raw := range desc.URLs {
		if f.o.connections > 1 && desc.Size >= int64(f.o.connections)*minPart {
			p, err := f.openParallel(ctx, desc, raw)
			if err == nil {
				vr, err := blob.NewReader(p, desc.Digest, desc.Size, redact.URL(raw))
				if err != nil {
					p.Close()
					return nil, fmt.Errorf("foreign blob %s from %s: %w", desc.Digest, redact.URL(raw), err)
				}
				return &verified{Reader: vr, c: p}, nil
			}
			if !errors.Is(err, errRangeIgnored) {
				if ctx.Err() != nil {
					return nil, fmt.Errorf("foreign blob %s from %s: %w", desc.Digest, redact.URL(raw), context.Cause(ctx))
				}
				f.o.events(Event{Kind: EventURLFailed, URL: redact.URL(raw), Err: err})
				fails = append(fails, &urlError{url: redact.URL(raw), err: err})
				continue
			}
			// One connection, then.
		}
		s := f.newStream(ctx, desc, raw)
		err := s.connect(0)
		if err == nil {
			vr, err := blob.NewReader(s, desc.Digest, desc.Size, s.name)
			if err != nil {
				s.Close()
				return nil, fmt.Errorf("foreign blob %s from %s: %w", desc.Digest, s.name, err)
			}
			return &verified{Reader: vr, c: s}, nil
		}
		s.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("foreign blob %s from %s: %w", desc.Digest, s.name, context.Cause(ctx))
		}
		f.o.events(Event{Kind: EventURLFailed, URL: s.name, Err: err})
		fails = append(fails, &urlError{url: s.name, err: err})
	}
	return nil, &allFailedError{digest: desc.Digest, fails: fails}
}

// verified is the stream Open returns: the blob's bytes, checked.
type verified struct {
	*blob.Reader // its VerifiesContent marks the stream as verifying
	c            io.Closer
}

// Close ends the stream and any request or backoff in progress.
func (v *verified) Close() error { return v.c.Close() }

// VerifiedBy implements blob.Passthrough.
func (v *verified) VerifiedBy() *blob.Reader { return v.Reader }

type urlError struct {
	url string
	err error
}

func (e *urlError) Error() string { return e.url + ": " + e.err.Error() }
func (e *urlError) Unwrap() error { return e.err }

// allFailedError lists why each URL failed; it matches ErrAllURLsFailed
// and each URL's error.
type allFailedError struct {
	digest v1.Hash
	fails  []error
}

func (e *allFailedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "foreign blob %s: %v:", e.digest, ErrAllURLsFailed)
	for _, err := range e.fails {
		b.WriteString("\n  ")
		b.WriteString(err.Error())
	}
	return b.String()
}

func (e *allFailedError) Unwrap() []error { return append([]error{ErrAllURLsFailed}, e.fails...) }

// errNoFetcher is returned by a Fetcher not made by NewFetcher.
var errNoFetcher = errors.New("foreign: the Fetcher was not made by NewFetcher")

// errClosed is returned by Read after Close.
var errClosed = errors.New("read after close")

// stream reads one URL, reconnecting after a broken connection. Read is
// not safe for concurrent use; Close may be called concurrently with Read.
type stream struct {
	f      *Fetcher
	ctx    context.Context // Open's, with cancel for Close
	cancel context.CancelFunc
	desc   v1.Descriptor
	raw    string // the URL as the descriptor gives it
	name   string // redacted, for messages and events

	mu     sync.Mutex
	cur    io.ReadCloser // the response body being read
	closed bool

	// requireRange makes a 200 answer to a Range request an error
	// (errRangeIgnored) instead of a restart: parallel parts need Range.
	requireRange bool

	// Read's own state.
	off    int64 // bytes passed on to the reader (from the blob's start)
	skip   int64 // bytes still to drop from the current response
	drops  int   // consecutive broken connections without progress
	dropAt int64 // offset of the last broken connection
	err    error // sticky failure
}

func (f *Fetcher) newStream(ctx context.Context, desc v1.Descriptor, raw string) *stream {
	ctx, cancel := context.WithCancel(ctx)
	return &stream{f: f, ctx: ctx, cancel: cancel, desc: desc, raw: raw, name: redact.URL(raw)}
}

// permanentError marks failures that retrying the same URL cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err} }

func isPermanent(err error) bool {
	var pe *permanentError
	return errors.As(err, &pe)
}

func (s *stream) errorf(format string, args ...any) error {
	return fmt.Errorf("foreign blob %s from %s: %w", s.desc.Digest, s.name, fmt.Errorf(format, args...))
}

// connect requests the blob from byte off, retrying with backoff, and
// makes the response the current one.
func (s *stream) connect(off int64) error {
	var last error
	for attempt := 1; attempt <= s.f.o.retries; attempt++ {
		if attempt > 1 {
			s.f.o.events(Event{Kind: EventRetry, URL: s.name, Offset: off, Err: last})
			if err := s.f.o.backoff.Wait(s.ctx, attempt-1, last); err != nil {
				return err
			}
		}
		body, skip, err := s.try(off)
		if err == nil {
			return s.install(body, skip)
		}
		last = err
		if isPermanent(err) || s.ctx.Err() != nil {
			return err
		}
	}
	if s.f.o.retries > 1 {
		return fmt.Errorf("%w (gave up after %d attempts)", last, s.f.o.retries)
	}
	return last
}

func (s *stream) install(body io.ReadCloser, skip int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		body.Close()
		return errClosed
	}
	s.cur, s.skip = body, skip
	return nil
}

// try makes one request for the blob from byte off. It returns the
// response body and how many of its first bytes to drop. A server that
// falls silent is abandoned by the client's stall transport; Close
// cancels the request through the stream's context.
func (s *stream) try(off int64) (io.ReadCloser, int64, error) {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodGet, s.raw, nil)
	if err != nil {
		// Open names the URL, redacted.
		return nil, 0, permanent(fmt.Errorf("%w: %s", ErrURLRefused, redact.ParseProblem(s.raw, err)))
	}
	req.Header.Set("User-Agent", s.f.o.userAgent)
	if off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
	}
	resp, err := s.f.client.Do(req)
	if err != nil {
		// The client's wrapping repeats the URL our own errors name
		// already; keep it only where it says which redirect target failed.
		var ue *url.Error
		if errors.As(err, &ue) && (ue.URL == s.name || errors.Is(err, ErrURLRefused) || errors.Is(err, ErrTooManyRedirects)) {
			err = ue.Err
		}
		return nil, 0, classify(err)
	}
	fail := func(err error) (io.ReadCloser, int64, error) {
		resp.Body.Close()
		return nil, 0, err
	}
	via := ""
	if final := resp.Request.URL.Redacted(); final != s.name {
		via = " (redirected to " + final + ")"
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		if resp.ContentLength >= 0 && s.desc.Size >= 0 && resp.ContentLength != s.desc.Size {
			return fail(permanent(fmt.Errorf("%w: the server announces %d bytes, the descriptor declares %d%s",
				blob.ErrSizeMismatch, resp.ContentLength, s.desc.Size, via)))
		}
		if off > 0 && s.requireRange {
			return fail(permanent(fmt.Errorf("%w%s", errRangeIgnored, via)))
		}
		if off > 0 {
			// The server ignored Range: the blob comes again from byte 0,
			// and the reader already has the first off bytes.
			s.f.o.events(Event{Kind: EventRestart, URL: s.name, Offset: off})
		}
		return resp.Body, off, nil
	case resp.StatusCode == http.StatusPartialContent && off > 0:
		start, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return fail(permanent(fmt.Errorf("206 answer to a Range request%s: %w", via, err)))
		}
		if start < 0 {
			start = off // no Content-Range: trust the server; the digest will tell
		}
		if start > off {
			return fail(permanent(fmt.Errorf("asked for bytes from %d, got bytes from %d%s", off, start, via)))
		}
		if total >= 0 && s.desc.Size >= 0 && total != s.desc.Size {
			return fail(permanent(fmt.Errorf("%w: the server announces %d bytes, the descriptor declares %d%s",
				blob.ErrSizeMismatch, total, s.desc.Size, via)))
		}
		return resp.Body, off - start, nil
	}
	err = fmt.Errorf("HTTP %s%s", resp.Status, via)
	code := resp.StatusCode
	switch {
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		return fail(&wait.RetryAfterError{Err: err, After: wait.RetryAfter(resp.Header.Get("Retry-After"), time.Now())})
	case code == http.StatusRequestTimeout || code == http.StatusTooEarly || code >= 500:
		return fail(err)
	}
	// 404, 410, 403, 401, 416, an unexpected 206 or 3xx...: asking again
	// will not help.
	return fail(permanent(err))
}

// classify marks the transport errors that retrying cannot fix.
func classify(err error) error {
	if errors.Is(err, ErrURLRefused) || errors.Is(err, ErrTooManyRedirects) {
		return permanent(err)
	}
	var cert *tls.CertificateVerificationError
	if errors.As(err, &cert) {
		return permanent(err)
	}
	var dns *net.DNSError
	if errors.As(err, &dns) && dns.IsNotFound {
		return permanent(err)
	}
	return err
}

// parseContentRange returns the first byte and the total of a
// "bytes first-last/total" header; -1 for what it does not give.
func parseContentRange(h string) (start, total int64, err error) {
	if h == "" {
		return -1, -1, nil
	}
	spec, ok := strings.CutPrefix(h, "bytes ")
	rng, tot, ok2 := strings.Cut(spec, "/")
	first, _, ok3 := strings.Cut(rng, "-")
	if !ok || !ok2 || !ok3 {
		return 0, 0, fmt.Errorf("malformed Content-Range %q", h)
	}
	start, err = strconv.ParseInt(strings.TrimSpace(first), 10, 64)
	if err != nil || start < 0 {
		return 0, 0, fmt.Errorf("malformed Content-Range %q", h)
	}
	total = -1
	if tot = strings.TrimSpace(tot); tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil || total < 0 {
			return 0, 0, fmt.Errorf("malformed Content-Range %q", h)
		}
	}
	return start, total, nil
}

// Read implements io.Reader: the blob's bytes, each passed on once,
// across reconnections.
func (s *stream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		s.mu.Lock()
		c, closed := s.cur, s.closed
		s.mu.Unlock()
		if closed || c == nil {
			return 0, s.fail(s.errorf("%w", errClosed))
		}
		n, err := c.Read(p)
		if n > 0 {
			if s.skip > 0 {
				drop := min(int64(n), s.skip)
				s.skip -= drop
				n = copy(p, p[drop:n])
			}
			s.off += int64(n)
		}
		if err == nil {
			if n > 0 {
				return n, nil
			}
			continue
		}
		if errors.Is(err, io.EOF) {
			if s.skip == 0 && (s.desc.Size < 0 || s.off >= s.desc.Size) {
				s.drop(c)
				return n, s.fail(io.EOF)
			}
			// A response without a length that ends early looks like
			// the end: it is not.
			err = fmt.Errorf("%w: the response ended after %d of %d bytes", io.ErrUnexpectedEOF, s.off, s.desc.Size)
		}
		s.drop(c)
		if rerr := s.reconnect(err); rerr != nil {
			return n, s.fail(rerr)
		}
		if n > 0 {
			return n, nil
		}
	}
}

// reconnect resumes after the current response broke with err.
func (s *stream) reconnect(err error) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return s.errorf("%w", errClosed)
	}
	if s.ctx.Err() != nil {
		return s.errorf("at byte %d: %w", s.off, context.Cause(s.ctx))
	}
	if s.off > s.dropAt {
		s.drops = 0
	}
	s.dropAt = s.off
	s.drops++
	if s.drops > s.f.o.retries {
		return s.errorf("connection lost %d times at byte %d without progress, last: %w", s.drops, s.off, err)
	}
	s.f.o.events(Event{Kind: EventResume, URL: s.name, Offset: s.off, Err: err})
	if s.drops > 1 {
		if err := s.f.o.backoff.Wait(s.ctx, s.drops-1, nil); err != nil {
			return s.errorf("at byte %d: %w", s.off, err)
		}
	}
	if cerr := s.connect(s.off); cerr != nil {
		return s.errorf("resuming at byte %d after %v: %w", s.off, err, cerr)
	}
	return nil
}

func (s *stream) fail(err error) error {
	s.err = err
	return err
}

// drop ends the current response c.
func (s *stream) drop(c io.ReadCloser) {
	s.mu.Lock()
	if s.cur == c {
		s.cur = nil
	}
	s.mu.Unlock()
	c.Close()
}

// Close ends the stream and whatever request or wait is in progress. It
// may be called concurrently with Read, and more than once.
func (s *stream) Close() error {
	s.mu.Lock()
	s.closed = true
	c := s.cur
	s.cur = nil
	s.mu.Unlock()
	s.cancel()
	if c != nil {
		c.Close()
	}
	return nil
}
