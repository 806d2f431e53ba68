package foreign

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/internal/wait"
	"github.com/ferry-dev/ferry/mediatype"
)

// allowLoopback is the pattern tests use for their httptest servers.
const allowLoopback = `^http://127\.0\.0\.1:`

// testData returns n reproducible bytes that do not repeat.
func testData(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 42))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func digest(b []byte) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(b))}
}

func descFor(b []byte, urls ...string) v1.Descriptor {
	return v1.Descriptor{MediaType: mediatype.DockerForeign, Size: int64(len(b)), Digest: digest(b), URLs: urls}
}

type eventLog struct {
	mu  sync.Mutex
	evs []Event
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	l.evs = append(l.evs, e)
	l.mu.Unlock()
}

func (l *eventLog) count(kind string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.evs {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

func newFetcher(t *testing.T, opts ...Option) *Fetcher {
	t.Helper()
	f, err := NewFetcher(append([]Option{WithBackoff(time.Millisecond, 5*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// fetch opens and reads d.
func fetch(t *testing.T, f *Fetcher, d v1.Descriptor) ([]byte, error) {
	t.Helper()
	rc, err := f.Open(context.Background(), d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if _, ok := rc.(blob.Verifying); !ok {
		t.Error("the stream does not declare that it verifies")
	}
	return io.ReadAll(rc)
}

func mustFetch(t *testing.T, f *Fetcher, d v1.Descriptor, want []byte) {
	t.Helper()
	got, err := fetch(t, f, d)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, not the blob's %d", len(got), len(want))
	}
}

func wantErr(t *testing.T, err error, target error, words ...string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got %v, want %v", err, target)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

func port(srv *httptest.Server) string {
	return srv.URL[strings.LastIndex(srv.URL, ":")+1:]
}

// msServer mimics Microsoft: /fwlink?linkid=N answers 302 to /blobs/<hex>,
// which serves the blob with Range support. It counts the blob requests.
type msServer struct {
	*httptest.Server
	blobs map[string][]byte // by hex digest
	links map[string]string // linkid -> hex
	hits  atomic.Int32
	mux   *http.ServeMux
}

func newMSServer(t *testing.T, data ...[]byte) *msServer {
	s := &msServer{blobs: map[string][]byte{}, links: map[string]string{}, mux: http.NewServeMux()}
	for i, b := range data {
		h := digest(b).Hex
		s.blobs[h] = b
		s.links[strconv.Itoa(i+1)] = h
	}
	s.mux.HandleFunc("/fwlink", func(w http.ResponseWriter, r *http.Request) {
		h, ok := s.links[r.URL.Query().Get("linkid")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.Redirect(w, r, "/blobs/"+h, http.StatusFound)
	})
	s.mux.HandleFunc("/blobs/", func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		b, ok := s.blobs[strings.TrimPrefix(r.URL.Path, "/blobs/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	})
	s.Server = httptest.NewServer(s.mux)
	t.Cleanup(s.Close)
	return s
}

func TestMicrosoftLike(t *testing.T) {
	data := testData(100_000)
	srv := newMSServer(t, testData(10), data)
	var log eventLog
	f := newFetcher(t, WithAllow(allowLoopback), WithEvents(log.add))
	mustFetch(t, f, descFor(data, srv.URL+"/fwlink?linkid=2"), data)
	if log.count(EventRedirect) != 1 {
		t.Errorf("events %+v: want one redirect", log.evs)
	}
}

func TestLoopbackLiteral(t *testing.T) {
	data := testData(1000)
	srv := newMSServer(t, data)
	u := srv.URL + "/fwlink?linkid=1"

	_, err := fetch(t, newFetcher(t), descFor(data, u))
	wantErr(t, err, ErrURLRefused, u, "loopback", "--foreign-allow")
	wantErr(t, err, ErrAllURLsFailed)
	if srv.hits.Load() != 0 {
		t.Error("the refused URL was fetched")
	}
	mustFetch(t, newFetcher(t, WithAllow(allowLoopback)), descFor(data, u), data)
}

// A DNS name that resolves to loopback is refused when dialed, unless a
// pattern allows that very URL.
func TestLoopbackName(t *testing.T) {
	data := testData(1000)
	srv := newMSServer(t, data)
	u := "http://localhost:" + port(srv.Server) + "/fwlink?linkid=1"

	_, err := fetch(t, newFetcher(t, WithAllow(allowLoopback)), descFor(data, u))
	wantErr(t, err, ErrURLRefused, u, "loopback", "--foreign-allow")
	if srv.hits.Load() != 0 {
		t.Error("the refused URL was fetched")
	}
	// Allowing localhost: the first request is allowed at dial time, and
	// so is the redirect, which stays on localhost.
	mustFetch(t, newFetcher(t, WithAllow(`^http://localhost:`)), descFor(data, u), data)
}

func TestSchemeRefused(t *testing.T) {
	data := testData(10)
	for _, u := range []string{"file:///etc/passwd", "ftp://ftp.example/x", "gopher://x/"} {
		_, err := fetch(t, newFetcher(t, WithAllow(`.*`)), descFor(data, u))
		wantErr(t, err, ErrURLRefused, u, strings.SplitN(u, ":", 2)[0])
	}
}

func TestRedirectRefused(t *testing.T) {
	data := testData(1000)
	srv := newMSServer(t, data)
	p := port(srv.Server)
	hex := digest(data).Hex
	srv.mux.HandleFunc("/tofile", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
	})
	srv.mux.HandleFunc("/to127002", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.2:"+p+"/blobs/"+hex, http.StatusFound)
	})
	srv.mux.HandleFunc("/tolocalhost", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://localhost:"+p+"/blobs/"+hex, http.StatusFound)
	})
	allowed := newFetcher(t, WithAllow(allowLoopback))

	_, err := fetch(t, allowed, descFor(data, srv.URL+"/tofile"))
	wantErr(t, err, ErrURLRefused, "file:///etc/passwd", srv.URL+"/tofile")

	// An IP literal the pattern does not cover: refused before dialing.
	_, err = fetch(t, allowed, descFor(data, srv.URL+"/to127002"))
	wantErr(t, err, ErrURLRefused, "http://127.0.0.2:"+p, "loopback")

	// A name the pattern does not cover: refused when dialed, although
	// the first URL was allowed.
	_, err = fetch(t, allowed, descFor(data, srv.URL+"/tolocalhost"))
	wantErr(t, err, ErrURLRefused, "http://localhost:"+p, "loopback")

	// A pattern covering only the first hop does not cover the next.
	_, err = fetch(t, newFetcher(t, WithAllow(`^http://127\.0\.0\.1:\d+/fwlink$`)), descFor(data, srv.URL+"/fwlink?linkid=1"))
	wantErr(t, err, ErrURLRefused, srv.URL+"/blobs/"+hex)

	if srv.hits.Load() != 0 {
		t.Errorf("%d refused blob requests reached the server", srv.hits.Load())
	}
}

func TestRedirectLimit(t *testing.T) {
	data := testData(100)
	var hops atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hops.Add(1)
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/hop/"))
		if n == 0 {
			w.Write(data)
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/hop/%d", n-1), http.StatusFound)
	}))
	defer srv.Close()

	f := newFetcher(t, WithAllow(allowLoopback))
	mustFetch(t, f, descFor(data, srv.URL+"/hop/10"), data)

	hops.Store(0)
	_, err := fetch(t, f, descFor(data, srv.URL+"/hop/11"))
	wantErr(t, err, ErrTooManyRedirects, srv.URL+"/hop/11", "at most 10")
	if hops.Load() != 11 {
		t.Errorf("%d requests, want 11", hops.Load())
	}

	hops.Store(0)
	_, err = fetch(t, newFetcher(t, WithAllow(allowLoopback), WithMaxRedirects(2)), descFor(data, srv.URL+"/hop/3"))
	wantErr(t, err, ErrTooManyRedirects)
	if hops.Load() != 3 {
		t.Errorf("%d requests, want 3", hops.Load())
	}
}

// dropServer serves data with Range support, except that its first
// full-blob GET breaks after half the bytes, in the given way.
func dropServer(t *testing.T, data []byte, how string, ranges *[]string) *httptest.Server {
	var mu sync.Mutex
	var first atomic.Bool
	first.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rg := r.Header.Get("Range"); rg != "" {
			mu.Lock()
			*ranges = append(*ranges, rg)
			mu.Unlock()
			if how == "ignore-range" {
				r.Header.Del("Range")
			}
		} else if first.Swap(false) {
			half := len(data) / 2
			switch how {
			case "stall":
				w.Header().Set("Content-Length", strconv.Itoa(len(data)))
				w.Write(data[:half])
				w.(http.Flusher).Flush()
				<-r.Context().Done()
				return
			case "no-length":
				// An HTTP/1.0-style response, delimited by the connection
				// closing: the break looks like the end.
				c, buf, _ := w.(http.Hijacker).Hijack()
				buf.WriteString("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
				buf.Write(data[:half])
				buf.Flush()
				c.Close()
				return
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.Write(data[:half])
			w.(http.Flusher).Flush()
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestResume(t *testing.T) {
	t.Parallel()
	data := testData(300_000)
	for _, how := range []string{"reset", "no-length", "stall"} {
		t.Run(how, func(t *testing.T) {
			var ranges []string
			srv := dropServer(t, data, how, &ranges)
			var log eventLog
			f := newFetcher(t, WithAllow(allowLoopback), WithEvents(log.add), WithStallTimeout(200*time.Millisecond))
			mustFetch(t, f, descFor(data, srv.URL+"/blob"), data)
			if log.count(EventResume) != 1 || log.evs[0].Offset == 0 {
				t.Fatalf("events %+v: want one resume at a non-zero offset", log.evs)
			}
			if len(ranges) != 1 || ranges[0] != fmt.Sprintf("bytes=%d-", log.evs[0].Offset) {
				t.Errorf("range requests %q, events %+v", ranges, log.evs)
			}
			if how == "stall" && (!errors.Is(log.evs[0].Err, ErrStalled) || !strings.Contains(fmt.Sprint(log.evs[0].Err), srv.URL+"/blob")) {
				t.Errorf("stall reported as %v", log.evs[0].Err)
			}
		})
	}
}

func TestRestartWhenRangeIgnored(t *testing.T) {
	data := testData(300_000)
	var ranges []string
	srv := dropServer(t, data, "ignore-range", &ranges)
	var log eventLog
	f := newFetcher(t, WithAllow(allowLoopback), WithEvents(log.add))
	mustFetch(t, f, descFor(data, srv.URL+"/blob"), data)
	if len(ranges) != 1 || log.count(EventRestart) != 1 {
		t.Errorf("range requests %q, events %+v", ranges, log.evs)
	}
}

// A 206 that starts before the requested offset: the overlap is dropped.
func TestResumeOverlap(t *testing.T) {
	data := testData(50_000)
	var first atomic.Bool
	first.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if first.Swap(false) {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.Write(data[:30_000])
			w.(http.Flusher).Flush()
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
			return
		}
		off, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(r.Header.Get("Range"), "bytes="), "-"))
		start := max(off-1000, 0)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(data)-1, len(data)))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(data[start:])
	}))
	defer srv.Close()
	mustFetch(t, newFetcher(t, WithAllow(allowLoopback)), descFor(data, srv.URL+"/blob"), data)
}

func TestCorruption(t *testing.T) {
	data := testData(100_000)
	bad := bytes.Clone(data)
	bad[70_000] ^= 1
	var second atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/bad", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(bad))
	})
	mux.HandleFunc("/good", func(w http.ResponseWriter, r *http.Request) {
		second.Add(1)
		w.Write(data)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	d := descFor(data, srv.URL+"/bad", srv.URL+"/good")
	_, err := fetch(t, newFetcher(t, WithAllow(allowLoopback)), d)
	wantErr(t, err, blob.ErrDigestMismatch, d.Digest.String(), srv.URL+"/bad")
	if second.Load() != 0 {
		t.Error("after handing over bad bytes, the fetcher tried the next URL")
	}
}

// A URL that announces the wrong length (an error page served with 200)
// is abandoned before any byte is handed over, and the next one tried.
func TestWrongLengthMovesOn(t *testing.T) {
	data := testData(10_000)
	mux := http.NewServeMux()
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>sorry</html>") })
	mux.HandleFunc("/good", func(w http.ResponseWriter, r *http.Request) { w.Write(data) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	f := newFetcher(t, WithAllow(allowLoopback))
	mustFetch(t, f, descFor(data, srv.URL+"/page", srv.URL+"/good"), data)
	_, err := fetch(t, f, descFor(data, srv.URL+"/page"))
	wantErr(t, err, blob.ErrSizeMismatch, srv.URL+"/page", "18 bytes")
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	data := testData(10_000)
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.Write(data)
	}))
	defer srv.Close()
	var log eventLog
	start := time.Now()
	mustFetch(t, newFetcher(t, WithAllow(allowLoopback), WithEvents(log.add)), descFor(data, srv.URL+"/busy"), data)
	if time.Since(start) < 900*time.Millisecond {
		t.Error("Retry-After: 1 was not honoured")
	}
	if log.count(EventRetry) != 1 {
		t.Errorf("events %+v", log.evs)
	}
}

func TestStatuses(t *testing.T) {
	data := testData(10_000)
	var calls sync.Map // path -> *atomic.Int32
	count := func(p string) *atomic.Int32 {
		c, _ := calls.LoadOrStore(p, new(atomic.Int32))
		return c.(*atomic.Int32)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := count(r.URL.Path).Add(1)
		switch r.URL.Path {
		case "/503-once":
			if n == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		case "/404":
			http.NotFound(w, r)
			return
		case "/410":
			w.WriteHeader(http.StatusGone)
			return
		case "/403":
			w.WriteHeader(http.StatusForbidden)
			return
		case "/500":
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Write(data)
	}))
	defer srv.Close()
	var log eventLog
	f := newFetcher(t, WithAllow(allowLoopback), WithRetries(3), WithEvents(log.add))

	mustFetch(t, f, descFor(data, srv.URL+"/503-once"), data)
	if count("/503-once").Load() != 2 {
		t.Errorf("503 then ok: %d requests", count("/503-once").Load())
	}
	// 404, 410 and 403 move on at once; the next URL serves.
	mustFetch(t, f, descFor(data, srv.URL+"/404", srv.URL+"/410", srv.URL+"/403", srv.URL+"/ok"), data)
	for _, p := range []string{"/404", "/410", "/403"} {
		if count(p).Load() != 1 {
			t.Errorf("%s requested %d times", p, count(p).Load())
		}
	}
	if log.count(EventURLFailed) != 3 {
		t.Errorf("events %+v", log.evs)
	}
	// Everything fails: each URL and its reason is listed.
	urls := []string{srv.URL + "/404", srv.URL + "/500", "file:///etc/passwd"}
	_, err := fetch(t, f, descFor(data, urls...))
	wantErr(t, err, ErrAllURLsFailed, append(urls, "404 Not Found", "500 Internal Server Error", "3 attempts", "only http and https", digest(data).String())...)
	wantErr(t, err, ErrURLRefused)
	if count("/500").Load() != 3 {
		t.Errorf("/500 requested %d times, want 3", count("/500").Load())
	}
}

// The fetcher must hand over the bytes as served, even when a server
// labels a .tar.gz with Content-Encoding: gzip.
func TestNoTransparentDecompression(t *testing.T) {
	data := testData(5000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			t.Error("the fetcher asked for gzip")
		}
		if ua := r.Header.Get("User-Agent"); ua != "ferry-test" {
			t.Errorf("User-Agent %q", ua)
		}
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(data)
	}))
	defer srv.Close()
	mustFetch(t, newFetcher(t, WithAllow(allowLoopback), WithUserAgent("ferry-test")), descFor(data, srv.URL+"/x"), data)
}

func TestClient(t *testing.T) {
	data := testData(1000)
	srv := newMSServer(t, data)
	p := port(srv.Server)
	srv.mux.HandleFunc("/tolocalhost", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://localhost:"+p+"/fwlink?linkid=1", http.StatusFound)
	})
	get := func(c *http.Client, u string) error {
		resp, err := c.Get(u)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err == nil && !bytes.Equal(got, data) {
			err = fmt.Errorf("%s: wrong bytes", u)
		}
		return err
	}
	if err := get(newFetcher(t).Client(), srv.URL+"/fwlink?linkid=1"); !errors.Is(err, ErrURLRefused) {
		t.Errorf("loopback without allow: %v", err)
	}
	allowed := newFetcher(t, WithAllow(allowLoopback)).Client()
	if err := get(allowed, srv.URL+"/fwlink?linkid=1"); err != nil {
		t.Errorf("loopback with allow: %v", err)
	}
	if err := get(allowed, srv.URL+"/tolocalhost"); !errors.Is(err, ErrURLRefused) {
		t.Errorf("redirect to localhost: %v", err)
	}
	if err := get(allowed, "file:///etc/passwd"); !errors.Is(err, ErrURLRefused) {
		t.Errorf("file: %v", err)
	}
}

// Through a configured proxy: the proxy (here on loopback) is dialed as
// configured; destinations are still judged.
func TestProxy(t *testing.T) {
	data := testData(2000)
	var seen []string
	var mu sync.Mutex
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.String())
		mu.Unlock()
		if r.URL.Host != "203.0.113.7" {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.Write(data)
	}))
	defer proxy.Close()
	pu, _ := url.Parse(proxy.URL)
	f := newFetcher(t, WithTransport(&http.Transport{Proxy: http.ProxyURL(pu)}), WithRetries(1))

	mustFetch(t, f, descFor(data, "http://203.0.113.7/blob"), data)
	_, err := fetch(t, f, descFor(data, "http://localhost:1/blob"))
	wantErr(t, err, ErrURLRefused, "http://localhost:1/blob", "loopback")
	_, err = fetch(t, f, descFor(data, "http://10.1.1.1/blob"))
	wantErr(t, err, ErrURLRefused, "private")
	if len(seen) != 1 {
		t.Errorf("the proxy saw %q", seen)
	}
}

func TestCloseDuringRead(t *testing.T) {
	data := testData(100_000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data[:1000])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	rc, err := newFetcher(t, WithAllow(allowLoopback)).Open(context.Background(), descFor(data, srv.URL+"/x"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, rc)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	rc.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a closed stream read to the end")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return after Close")
	}
	if _, err := rc.Read(make([]byte, 10)); err == nil {
		t.Error("Read after Close succeeded")
	}
}

func TestCancel(t *testing.T) {
	data := testData(1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	f := newFetcher(t, WithAllow(allowLoopback), WithBackoff(time.Second, time.Second))
	start := time.Now()
	_, err := f.Open(ctx, descFor(data, srv.URL+"/x"))
	wantErr(t, err, context.Canceled, digest(data).String())
	if time.Since(start) > 2*time.Second {
		t.Error("cancellation did not interrupt the backoff")
	}
}

func TestOpenErrors(t *testing.T) {
	f := newFetcher(t)
	_, err := f.Open(context.Background(), v1.Descriptor{Digest: digest(nil), Size: 0})
	wantErr(t, err, ErrAllURLsFailed, "no urls")
	_, err = f.Open(context.Background(), v1.Descriptor{Digest: v1.Hash{Algorithm: "md5", Hex: "00"}, URLs: []string{"https://x/"}})
	wantErr(t, err, blob.ErrUnsupportedAlgorithm)
}

func TestOptions(t *testing.T) {
	for name, opt := range map[string]Option{
		"retries 0":      WithRetries(0),
		"redirects -1":   WithMaxRedirects(-1),
		"backoff 0":      WithBackoff(0, time.Second),
		"backoff max<b":  WithBackoff(time.Second, time.Millisecond),
		"stall negative": WithStallTimeout(-1),
	} {
		if _, err := NewFetcher(opt); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if _, err := NewFetcher(WithEvents(nil), nil, WithTransport(nil)); err != nil {
		t.Error(err)
	}
}

func TestBackoff(t *testing.T) {
	f := newFetcher(t, WithBackoff(100*time.Millisecond, time.Second))
	for retry, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 100: time.Second} {
		for range 20 {
			if d := f.o.backoff.Delay(retry, nil); d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %s, want %s/2..%s", retry, d, want, want)
			}
		}
	}
	ra := &wait.RetryAfterError{Err: errors.New("429"), After: 3 * time.Second}
	if d := f.o.backoff.Delay(1, fmt.Errorf("x: %w", ra)); d != 3*time.Second {
		t.Errorf("Retry-After: %s", d)
	}
	ra.After = time.Hour
	if d := f.o.backoff.Delay(1, ra); d != wait.MaxRetryAfter {
		t.Errorf("Retry-After capped at %s", d)
	}
}

func TestParseContentRange(t *testing.T) {
	for in, want := range map[string][2]int64{
		"":                {-1, -1},
		"bytes 10-99/100": {10, 100},
		"bytes 0-0/*":     {0, -1},
		"bytes 5-9/ 10":   {5, 10},
	} {
		s, tot, err := parseContentRange(in)
		if err != nil || s != want[0] || tot != want[1] {
			t.Errorf("%q: %d %d %v", in, s, tot, err)
		}
	}
	for _, in := range []string{"items 1-2/3", "bytes x-2/3", "bytes 1-2", "bytes -1-2/3", "bytes 1-2/y"} {
		if _, _, err := parseContentRange(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// The fetcher streams: what it allocates does not grow with the blob.
func TestMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 64 MiB")
	}
	const size = 64 << 20
	chunk := testData(1 << 20)
	h := sha256.New()
	for range size / len(chunk) {
		h.Write(chunk)
	}
	d := v1.Descriptor{Size: size, Digest: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		for range size / len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	d.URLs = []string{srv.URL + "/big"}
	f := newFetcher(t, WithAllow(allowLoopback))

	var before, after runtimeMem
	before.read()
	rc, err := f.Open(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.CopyBuffer(io.Discard, rc, make([]byte, 32<<10))
	rc.Close()
	if err != nil || n != size {
		t.Fatalf("%d bytes, %v", n, err)
	}
	after.read()
	grew := after.total - before.total
	t.Logf("allocated %d KiB to stream %d MiB", grew>>10, size>>20)
	if grew > 16<<20 {
		t.Errorf("allocated %d MiB to stream %d MiB", grew>>20, size>>20)
	}
}

type runtimeMem struct{ total uint64 }

func (m *runtimeMem) read() {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.total = ms.TotalAlloc
}

// A connection opened for an allowed URL must not carry a request for a
// URL the pattern does not cover, on the same host and port.
func TestNoConnectionReuseAcrossURLs(t *testing.T) {
	data := testData(1000)
	srv := newMSServer(t, data)
	base := "http://localhost:" + port(srv.Server)
	f := newFetcher(t, WithAllow(`^http://localhost:\d+/blobs/`))
	mustFetch(t, f, descFor(data, base+"/blobs/"+digest(data).Hex), data)
	_, err := fetch(t, f, descFor(data, base+"/fwlink?linkid=1"))
	wantErr(t, err, ErrURLRefused, base+"/fwlink?linkid=1")
}

// A consumer slow to read (a slow destination) is not a stalled server.
func TestSlowConsumerIsNoStall(t *testing.T) {
	t.Parallel()
	data := testData(2 << 20)
	srv := newMSServer(t, data)
	var log eventLog
	f := newFetcher(t, WithAllow(allowLoopback), WithEvents(log.add), WithStallTimeout(100*time.Millisecond))
	rc, err := f.Open(context.Background(), descFor(data, srv.URL+"/fwlink?linkid=1"))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	time.Sleep(300 * time.Millisecond)
	head := make([]byte, 1000)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	rest, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(append(head, rest...), data) {
		t.Fatalf("%v", err)
	}
	if n := log.count(EventResume); n != 0 {
		t.Errorf("%d resumes: %+v", n, log.evs)
	}
}

func TestZeroFetcher(t *testing.T) {
	var f Fetcher
	if _, err := f.Open(context.Background(), descFor(nil, "https://x/")); err == nil {
		t.Error("zero Fetcher opened a blob")
	}
	if _, err := f.Client().Get("https://x/"); err == nil {
		t.Error("zero Fetcher's client made a request")
	}
}
