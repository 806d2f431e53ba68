package stall

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const d = 200 * time.Millisecond

// server answers each request with handler; handlers that wait on the
// request's context end when the client gives up.
func server(t *testing.T, handler http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return srv
}

func client() *http.Client {
	return &http.Client{Transport: Wrap(http.DefaultTransport.(*http.Transport).Clone(), d)}
}

// wantStalled checks that err is a stall naming the request and the
// timeout, and that it came about as soon as it should.
func wantStalled(t *testing.T, err error, url string, start time.Time) {
	t.Helper()
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("error %v, want one wrapping ErrStalled", err)
	}
	if msg := err.Error(); !strings.Contains(msg, url) || !strings.Contains(msg, d.String()) {
		t.Errorf("error %q names neither %s nor %s", msg, url, d)
	}
	if took := time.Since(start); took > 10*d {
		t.Errorf("the stall was noticed after %s", took)
	}
}

func TestNoHeaders(t *testing.T) {
	t.Parallel()
	srv := server(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	start := time.Now()
	_, err := client().Get(srv.URL + "/silent")
	wantStalled(t, err, srv.URL+"/silent", start)
}

func TestBodyStalls(t *testing.T) {
	t.Parallel()
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Write([]byte("a few bytes"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	resp, err := client().Get(srv.URL + "/blob")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start := time.Now()
	b, err := io.ReadAll(resp.Body)
	if string(b) != "a few bytes" {
		t.Errorf("read %q before the stall", b)
	}
	wantStalled(t, err, srv.URL+"/blob", start)
}

func TestUploadStalls(t *testing.T) {
	t.Parallel()
	// The server never reads the body. Its request context would not
	// end when the client gives up (it learns of that only by reading),
	// so the handler takes the connection and holds it until the test
	// ends.
	done := make(chan struct{})
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		c, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		<-done
	})
	t.Cleanup(func() { close(done) })
	// Endless: it fills the socket buffers, then the server takes no more.
	body := io.NopCloser(infinite{})
	req, err := http.NewRequest(http.MethodPut, srv.URL+"/upload", body)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = client().Do(req)
	wantStalled(t, err, srv.URL+"/upload", start)
}

type infinite struct{}

func (infinite) Read(p []byte) (int, error) { return len(p), nil }

// A caller slow to read the body is not a stalled server.
func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	data := strings.Repeat("x", 1<<20)
	srv := server(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, data) })
	resp, err := client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	time.Sleep(3 * d)
	head := make([]byte, 1000)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * d)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(head)+string(rest) != data {
		t.Fatalf("%v (%d bytes)", err, len(head)+len(rest))
	}
}

// The caller's own cancellation is not reported as a stall.
func TestCancelIsNoStall(t *testing.T) {
	t.Parallel()
	srv := server(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	ctx, cancel := context.WithTimeout(context.Background(), d/4)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client().Do(req)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrStalled) {
		t.Errorf("error %v, want the caller's deadline", err)
	}
}

func TestWrapZero(t *testing.T) {
	base := http.DefaultTransport
	if Wrap(base, 0) != base {
		t.Error("Wrap with no timeout changed the transport")
	}
}
