// Package stall abandons HTTP requests during which no byte moves for a
// while, so that a server that accepts a connection and then falls silent
// cannot hold a transfer forever. The registry client and the foreign
// fetcher wrap their transports with it.
package stall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// ErrStalled means a request was abandoned because no byte moved for the
// stall timeout. Callers retry it like a dropped connection.
var ErrStalled = errors.New("stalled")

// DefaultTimeout is the stall timeout of ferry's registry and foreign-URL
// clients unless the caller sets another (ferry --stall-timeout).
const DefaultTimeout = 60 * time.Second

// Hint is what to tell a user whose command failed with ErrStalled.
const Hint = "the server sent or took nothing for the stall timeout; if it is slow rather than stuck (a registry committing a large upload can be), raise --stall-timeout"

// Wrap returns base wrapped so that a request made through it is
// abandoned when no byte moves for d: while the server does not take the
// next bytes of a request body, while it waits for the response headers
// (after the last byte of the body, if any), and while a Read of the
// response body waits for the server. The request then fails with an
// error naming its method, URL and d and wrapping ErrStalled. Time spent
// by the caller (producing the upload, consuming the download) is not a
// stall. A server that takes longer than d to commit a large upload needs
// a longer timeout: the bytes sent may still sit in socket buffers, so a
// silent server cannot be told from a busy one. Each hop of a redirect is
// a request of its own, with its own watch. With d <= 0, Wrap returns
// base: no check.
func Wrap(base http.RoundTripper, d time.Duration) http.RoundTripper {
	if d <= 0 {
		return base
	}
	return &transport{base: base, d: d}
}

// transport is what Wrap returns.
type transport struct {
	base http.RoundTripper
	d    time.Duration
}

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	w := &watchdog{d: t.d, cancel: cancel}
	w.timer = time.AfterFunc(t.d, w.fire)
	out := req.WithContext(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		out.Body = &uploadBody{rc: req.Body, w: w}
	}
	resp, err := t.base.RoundTrip(out)
	w.timer.Stop()
	if err != nil {
		cancel()
		return nil, w.wrap(req, err)
	}
	resp.Body = &downloadBody{rc: resp.Body, w: w, req: req}
	return resp, nil
}

// watchdog cancels a request's context when its timer fires.
type watchdog struct {
	d      time.Duration
	timer  *time.Timer
	cancel context.CancelFunc

	mu    sync.Mutex
	fired bool
}

func (w *watchdog) fire() {
	w.mu.Lock()
	w.fired = true
	w.mu.Unlock()
	w.cancel()
}

// wrap replaces the error of a request the watchdog cancelled (which says
// "context canceled", as if the user had interrupted) with ErrStalled.
func (w *watchdog) wrap(req *http.Request, err error) error {
	w.mu.Lock()
	fired := w.fired
	w.mu.Unlock()
	if !fired || req.Context().Err() != nil {
		return err
	}
	return fmt.Errorf("%s %s: %w: no data moved for %s", req.Method, req.URL.Redacted(), ErrStalled, w.d)
}

// uploadBody arms the watchdog between the transport's Reads (the server
// is not taking bytes, or, after the last one, not answering) and disarms
// it during them (the caller's source is producing bytes).
type uploadBody struct {
	rc io.ReadCloser
	w  *watchdog
}

func (b *uploadBody) Read(p []byte) (int, error) {
	b.w.timer.Stop()
	n, err := b.rc.Read(p)
	b.w.timer.Reset(b.w.d)
	return n, err
}

func (b *uploadBody) Close() error { return b.rc.Close() }

// downloadBody arms the watchdog during each Read.
type downloadBody struct {
	rc  io.ReadCloser
	w   *watchdog
	req *http.Request
}

func (b *downloadBody) Read(p []byte) (int, error) {
	b.w.timer.Reset(b.w.d)
	n, err := b.rc.Read(p)
	b.w.timer.Stop()
	if err != nil && !errors.Is(err, io.EOF) {
		err = b.w.wrap(b.req, err)
	}
	return n, err
}

func (b *downloadBody) Close() error {
	b.w.timer.Stop()
	err := b.rc.Close()
	b.w.cancel()
	return err
}
