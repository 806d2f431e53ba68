package foreign

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/blob"
)

const loopback = `^http://127\.0\.0\.1:`

func descFor(b []byte, urls ...string) v1.Descriptor {
	return v1.Descriptor{MediaType: DockerForeign, Size: int64(len(b)), Digest: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(b))}, URLs: urls}
}

func fetch(t *testing.T, f *Fetcher, d v1.Descriptor) ([]byte, error) {
	t.Helper()
	rc, err := f.Open(context.Background(), d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if _, ok := rc.(blob.Verifying); !ok {
		t.Error("fetcher stream does not declare that it verifies")
	}
	return io.ReadAll(rc)
}

func newFetcher(t *testing.T, opts ...Option) *Fetcher {
	t.Helper()
	f, err := NewFetcher(append([]Option{WithBackoff(time.Millisecond, 5*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestMediaTypes(t *testing.T) {
	for in, want := range map[string]string{
		DockerForeign:  "application/vnd.docker.image.rootfs.diff.tar.gzip",
		OCINondistGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
		OCINondistZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
		OCINondist:     "application/vnd.oci.image.layer.v1.tar",
	} {
		if got, ok := Distributable(in); !ok || got != want || !IsForeign(in) {
			t.Errorf("%s -> %s, %v", in, got, ok)
		}
	}
	if IsForeign("application/vnd.oci.image.layer.v1.tar+gzip") {
		t.Error("ordinary layer taken for foreign")
	}
}

func TestRedirectAndPolicy(t *testing.T) {
	data := bytes.Repeat([]byte("nanoserver"), 5000)
	mux := http.NewServeMux()
	mux.HandleFunc("/cdn", func(w http.ResponseWriter, r *http.Request) { w.Write(data) })
	mux.HandleFunc("/fwlink", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/cdn", http.StatusFound) })
	mux.HandleFunc("/tofile", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
	})
	var loops atomic.Int32
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		loops.Add(1)
		http.Redirect(w, r, "/loop", http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]

	// Allowed: followed through the 302 and verified.
	got, err := fetch(t, newFetcher(t, WithAllow(loopback)), descFor(data, srv.URL+"/fwlink?linkid=1"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("allowed fetch: %v", err)
	}
	// Not allowed: a loopback literal.
	_, err = fetch(t, newFetcher(t), descFor(data, srv.URL+"/fwlink"))
	if !errors.Is(err, ErrURLRefused) || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("loopback literal: %v", err)
	}
	// A DNS name resolving to loopback is refused when the dial happens.
	_, err = fetch(t, newFetcher(t, WithAllow(loopback)), descFor(data, "http://localhost"+port+"/cdn"))
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("localhost by name: %v", err)
	}
	// file:// directly, and through a redirect.
	_, err = fetch(t, newFetcher(t), descFor(data, "file:///etc/passwd"))
	if !errors.Is(err, ErrURLRefused) || !strings.Contains(err.Error(), "file") {
		t.Errorf("file url: %v", err)
	}
	_, err = fetch(t, newFetcher(t, WithAllow(loopback)), descFor(data, srv.URL+"/tofile"))
	if err == nil || !strings.Contains(err.Error(), "file") {
		t.Errorf("redirect to file: %v", err)
	}
	// An allowed URL redirecting to a loopback name the pattern does not
	// cover is refused at dial time.
	mux.HandleFunc("/tolocalhost", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://localhost"+port+"/cdn", http.StatusFound)
	})
	_, err = fetch(t, newFetcher(t, WithAllow(loopback)), descFor(data, srv.URL+"/tolocalhost"))
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("redirect to localhost: %v", err)
	}
	// Too many redirects.
	_, err = fetch(t, newFetcher(t, WithAllow(loopback)), descFor(data, srv.URL+"/loop"))
	if err == nil || !strings.Contains(err.Error(), "redirects") || loops.Load() > 11 {
		t.Errorf("redirect loop: %v after %d", err, loops.Load())
	}
}

func TestRetriesAndFallback(t *testing.T) {
	data := bytes.Repeat([]byte("servercore"), 3000)
	var busy atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/busy", func(w http.ResponseWriter, r *http.Request) {
		if busy.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.Write(data)
	})
	mux.HandleFunc("/gone", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { w.Write(data) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	f := newFetcher(t, WithAllow(loopback))

	start := time.Now()
	if got, err := fetch(t, f, descFor(data, srv.URL+"/busy")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("429 then ok: %v", err)
	}
	if time.Since(start) < 900*time.Millisecond {
		t.Error("Retry-After: 1 was not honoured")
	}
	if got, err := fetch(t, f, descFor(data, srv.URL+"/gone", srv.URL+"/ok")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("404 then second URL: %v", err)
	}
	_, err := fetch(t, f, descFor(data, srv.URL+"/gone", srv.URL+"/gone?2"))
	if !errors.Is(err, ErrAllURLsFailed) || !strings.Contains(err.Error(), "/gone?2") {
		t.Errorf("all fail: %v", err)
	}
}

func TestResumeAndCorruption(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 8192)
	var dropped, ranges atomic.Int32
	ignoreRange := false
	corrupt := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := data
		if corrupt {
			b = append([]byte{}, data...)
			b[100] ^= 1
		}
		if r.Header.Get("Range") != "" {
			ranges.Add(1)
			if ignoreRange {
				r.Header.Del("Range")
			}
		} else if dropped.Add(1) == 1 {
			w.Header().Set("Content-Length", fmt.Sprint(len(b)))
			w.Write(b[:len(b)/2])
			w.(http.Flusher).Flush()
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	}))
	defer srv.Close()
	f := newFetcher(t, WithAllow(loopback))
	got, err := fetch(t, f, descFor(data, srv.URL+"/blob"))
	if err != nil || !bytes.Equal(got, data) || ranges.Load() != 1 {
		t.Fatalf("resume: %v, %d range requests", err, ranges.Load())
	}
	dropped.Store(0)
	ignoreRange = true
	got, err = fetch(t, f, descFor(data, srv.URL+"/blob"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("restart when Range is ignored: %v", err)
	}
	corrupt = true
	d := descFor(data, srv.URL+"/blob")
	_, err = fetch(t, f, d)
	if !errors.Is(err, blob.ErrDigestMismatch) || !strings.Contains(err.Error(), d.Digest.String()) || !strings.Contains(err.Error(), srv.URL+"/blob") {
		t.Errorf("corruption: %v", err)
	}
}

func TestRewriteURLs(t *testing.T) {
	rw, err := ParseRewrite("https://go.microsoft.com/=http://mirror.corp/ms/")
	if err != nil {
		t.Fatal(err)
	}
	got := RewriteURLs([]string{"https://go.microsoft.com/fwlink?linkid=1", "https://other/x"}, []Rewrite{rw})
	if got[0] != "http://mirror.corp/ms/fwlink?linkid=1" || got[1] != "https://other/x" {
		t.Errorf("got %v", got)
	}
	if _, err := ParseRewrite("nope"); err == nil {
		t.Error("no error for a rule without =")
	}
}
