// Package faults is a reverse proxy for tests that injects the failures
// real transfers meet — error statuses, dropped and stalled connections,
// truncated bodies, lying Content-Length headers, altered content,
// redirect loops, slow links — between a client and a real server (a
// registry, a foreign-layer URL server), and counts the requests and body
// bytes that pass, per path, so that a test can assert what a rerun
// transferred.
//
// The proxy keeps the client's Host header, so that a registry builds its
// upload URLs on the proxy's address, and rewrites Location headers that
// point at the server so that redirects come back through the proxy.
package faults

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Kind is what a Fault does to a matching request.
type Kind int

// Fault kinds.
const (
	// Status answers Fault.Status (with Retry-After when Fault.RetryAfter
	// is set) and a body in the distribution error format, without
	// passing the request on.
	Status Kind = iota + 1
	// Drop closes the connection after Fault.After bytes: of the request
	// body when the request has one (an upload), else of the response
	// body, whose Content-Length promised all of it.
	Drop
	// Stall stops after Fault.After bytes, like Drop, but keeps the
	// connection open and silent until the client gives up.
	Stall
	// Truncate sends the first Fault.After bytes of the response body as
	// the whole body, with a Content-Length that agrees: only the content
	// check can tell.
	Truncate
	// WrongLength sends the whole response body under a Content-Length
	// Fault.Extra bytes larger, then closes the connection.
	WrongLength
	// Rewrite sends Fault.Fn(body) instead of the response body, with its
	// Content-Length and every other header (digest included) unchanged
	// in meaning.
	Rewrite
	// Trickle sends the response body Fault.Rate bytes at a time, every
	// 10ms.
	Trickle
	// Redirect answers 302 Found pointing at the request's own URL, so a
	// client following redirects never arrives.
	Redirect
)

// Fault describes one injected failure.
type Fault struct {
	Kind Kind
	// Method limits the fault to one method ("" for any).
	Method string
	// Path limits the fault to requests whose path and query contain it
	// ("" for any), e.g. "/blobs/sha256:", "/manifests/", "/cdn/", or
	// "digest=sha256:..." for the upload that completes one blob.
	Path string
	// Times is how many matching requests get the fault: 0 means one,
	// a negative number every one.
	Times int

	Status     int                 // for Status
	RetryAfter string              // for Status: the Retry-After header, e.g. "1"
	After      int64               // for Drop, Stall and Truncate
	Extra      int64               // for WrongLength
	Fn         func([]byte) []byte // for Rewrite
	Rate       int                 // for Trickle: bytes per tick
}

// Proxy is a fault-injecting reverse proxy on 127.0.0.1. Its methods are
// safe for concurrent use and faults may be added between requests.
type Proxy struct {
	// URL is "http://127.0.0.1:PORT"; Host is "127.0.0.1:PORT".
	URL, Host string

	target *url.URL
	rt     http.RoundTripper
	srv    *httptest.Server
	done   chan struct{}
	once   sync.Once

	mu       sync.Mutex
	faults   []*Fault // Times counts down; removed at zero
	requests map[string]int
	bytes    map[string]int64
}

// New starts a proxy in front of target ("http://HOST:PORT"), closed when
// the test ends.
func New(t testing.TB, target string) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("faults: target %q: %v", target, err)
	}
	// Not http.DefaultTransport's own type asserted: a mirror started
	// in the same test binary wraps it (server's userAgentDefault).
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 16, DisableCompression: true}
	p := &Proxy{target: u, rt: tr, done: make(chan struct{}), requests: map[string]int{}, bytes: map[string]int64{}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	p.URL = p.srv.URL
	p.Host = strings.TrimPrefix(p.srv.URL, "http://")
	t.Cleanup(p.Close)
	return p
}

// Close releases stalled requests and shuts the proxy down. Tests need not
// call it.
func (p *Proxy) Close() {
	p.once.Do(func() {
		close(p.done)
		p.srv.CloseClientConnections()
		p.srv.Close()
		tr, _ := p.rt.(*http.Transport)
		if tr != nil {
			tr.CloseIdleConnections()
		}
	})
}

// Add registers a fault. Faults are matched in the order they were added;
// the first match applies.
func (p *Proxy) Add(f Fault) {
	if f.Times == 0 {
		f.Times = 1
	}
	p.mu.Lock()
	p.faults = append(p.faults, &f)
	p.mu.Unlock()
}

// Clear removes every fault and resets the counters.
func (p *Proxy) Clear() {
	p.mu.Lock()
	p.faults = nil
	clear(p.requests)
	clear(p.bytes)
	p.mu.Unlock()
}

// Requests returns how many requests with the method ("" for any) and a
// path containing sub the proxy has received.
func (p *Proxy) Requests(method, sub string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for k, v := range p.requests {
		if match(k, method, sub) {
			n += v
		}
	}
	return n
}

// Bytes returns how many body bytes passed the proxy for requests with
// the method ("" for any) and a path containing sub: successful (2xx)
// response bodies sent to the client plus request bodies taken from it.
func (p *Proxy) Bytes(method, sub string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for k, v := range p.bytes {
		if match(k, method, sub) {
			n += v
		}
	}
	return n
}

func match(key, method, sub string) bool {
	m, path, _ := strings.Cut(key, " ")
	return (method == "" || m == method) && strings.Contains(path, sub)
}

func (p *Proxy) count(key string, n int64) {
	p.mu.Lock()
	p.bytes[key] += n
	p.mu.Unlock()
}

// take returns the fault for a request, counting it down.
func (p *Proxy) take(r *http.Request) *Fault {
	key := r.Method + " " + r.URL.Path
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests[key]++
	for i, f := range p.faults {
		if (f.Method == "" || f.Method == r.Method) && strings.Contains(r.URL.RequestURI(), f.Path) {
			c := *f
			if f.Times > 0 {
				f.Times--
				if f.Times == 0 {
					p.faults = append(p.faults[:i], p.faults[i+1:]...)
				}
			}
			return &c
		}
	}
	return nil
}

// countingReader counts what the upstream takes of a request body and
// applies Drop and Stall to it.
type countingReader struct {
	p     *Proxy
	r     *http.Request
	key   string
	f     *Fault // nil, or a Drop or Stall
	n     int64
	fired bool
}

func (c *countingReader) Read(b []byte) (int, error) {
	if c.f != nil && c.n+int64(len(b)) > c.f.After {
		b = b[:max(c.f.After-c.n, 0)]
		if len(b) == 0 {
			c.fired = true
			if c.f.Kind == Stall {
				c.p.wait(c.r)
			}
			return 0, fmt.Errorf("faults: %s after %d request bytes", kindName(c.f.Kind), c.n)
		}
	}
	n, err := c.r.Body.Read(b)
	c.n += int64(n)
	c.p.count(c.key, int64(n))
	return n, err
}

func kindName(k Kind) string {
	if k == Stall {
		return "stalled"
	}
	return "dropped"
}

// wait blocks until the client goes away or the proxy closes.
func (p *Proxy) wait(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-p.done:
	}
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	f := p.take(r)
	key := r.Method + " " + r.URL.Path
	switch {
	case f != nil && f.Kind == Status:
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.Status)
		fmt.Fprintf(w, `{"errors":[{"code":"UNKNOWN","message":"faults: injected %d"}]}`+"\n", f.Status)
		return
	case f != nil && f.Kind == Redirect:
		http.Redirect(w, r, r.URL.RequestURI(), http.StatusFound)
		return
	}
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	cr := &countingReader{p: p, r: r, key: key}
	if hasBody && f != nil && (f.Kind == Drop || f.Kind == Stall) {
		cr.f, f = f, nil
	}
	var body io.Reader
	if hasBody {
		body = cr
	}
	u := *p.target
	u.Path, u.RawPath, u.RawQuery = r.URL.Path, r.URL.RawPath, r.URL.RawQuery
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	out.Host = r.Host
	out.ContentLength = r.ContentLength
	if !hasBody {
		out.ContentLength = 0
	}
	resp, err := p.rt.RoundTrip(out)
	if cr.fired {
		if resp != nil {
			resp.Body.Close()
		}
		hijackClose(w)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		hijackClose(w)
		return
	}
	for k, vs := range resp.Header {
		if k == "Content-Length" {
			continue
		}
		for _, v := range vs {
			if k == "Location" {
				v = p.local(v)
			}
			w.Header().Add(k, v)
		}
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Length", resp.Header.Get("Content-Length"))
		w.WriteHeader(resp.StatusCode)
		return
	}
	p.respond(w, r, key, resp.StatusCode, b, f)
}

// respond writes status and body b, applying a response fault.
func (p *Proxy) respond(w http.ResponseWriter, r *http.Request, key string, status int, b []byte, f *Fault) {
	length := int64(len(b))
	send := b
	var kind Kind
	if f != nil {
		kind = f.Kind
	}
	switch kind {
	case Drop, Stall:
		send = b[:min(max(f.After, 0), length)]
	case Truncate:
		send = b[:min(max(f.After, 0), length)]
		length = int64(len(send))
	case WrongLength:
		length += f.Extra
	case Rewrite:
		send = f.Fn(bytes.Clone(b))
		length = int64(len(send))
	}
	w.Header().Set("Content-Length", strconv.FormatInt(length, 10))
	w.WriteHeader(status)
	if kind == Trickle {
		rate := max(f.Rate, 1)
		for off := 0; off < len(send); off += rate {
			chunk := send[off:min(off+rate, len(send))]
			if _, err := w.Write(chunk); err != nil {
				return
			}
			if status < 300 {
				p.count(key, int64(len(chunk)))
			}
			w.(http.Flusher).Flush()
			select {
			case <-time.After(10 * time.Millisecond):
			case <-r.Context().Done():
				return
			case <-p.done:
				return
			}
		}
		return
	}
	n, _ := w.Write(send)
	if status < 300 {
		p.count(key, int64(n))
	}
	switch kind {
	case Drop, WrongLength:
		hijackClose(w)
	case Stall:
		w.(http.Flusher).Flush()
		p.wait(r)
	}
}

// local points a URL on the target at the proxy instead.
func (p *Proxy) local(v string) string {
	base := p.target.Scheme + "://" + p.target.Host
	if rest, ok := strings.CutPrefix(v, base); ok {
		return p.URL + rest
	}
	return v
}

// hijackClose pushes out what was written and closes the connection.
func hijackClose(w http.ResponseWriter) {
	w.(http.Flusher).Flush()
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	_ = buf.Flush()
	conn.Close()
}

// Dump returns the body byte counters by "METHOD path", for failure
// messages.
func (p *Proxy) Dump() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.bytes)
}
