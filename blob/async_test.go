package blob

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"
)

// largeBlob returns content above AsyncThreshold, so Readers of it hash on
// a second goroutine (when there is a second core).
func largeBlob() []byte {
	b := make([]byte, AsyncThreshold+12345)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// The verdicts of the async path are those of the inline one, including
// at the declared size for a consumer that stops there, with reads of odd
// sizes that straddle the staging buffers.
func TestAsyncReaderVerdicts(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	data := largeBlob()
	d := digestOf(t, data)
	bad := append([]byte{}, data...)
	bad[len(bad)-1] ^= 1
	size := int64(len(data))
	cases := []struct {
		name    string
		content []byte
		want    error
	}{
		{"good", data, nil},
		{"corrupt last byte", bad, ErrDigestMismatch},
		{"short", data[:len(data)-1], ErrSizeMismatch},
		{"long", append(append([]byte{}, data...), 'x'), ErrSizeMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(tc.content), d, size, "http://example/x")
			if err != nil {
				t.Fatal(err)
			}
			if r.async == nil {
				t.Fatal("a blob above AsyncThreshold is hashed inline")
			}
			buf := make([]byte, 77777) // not a divisor of the staging buffers
			_, err = io.CopyBuffer(io.Discard, io.LimitReader(struct{ io.Reader }{r}, size+1), buf)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.want != nil && !strings.Contains(err.Error(), d.String()) {
				t.Errorf("error %q does not name the digest", err)
			}
			if (tc.want == nil) != r.Verified() {
				t.Errorf("Verified() = %v", r.Verified())
			}
		})
	}
}

// A Reader given up half way (closed, or just dropped) stops its hasher
// goroutine, and a closed one refuses further reads.
func TestAsyncReaderAbandoned(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	data := largeBlob()
	d := digestOf(t, data)
	before := runtime.NumGoroutine()

	rc, err := NewReadCloser(io.NopCloser(bytes.NewReader(data)), d, int64(len(data)), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, rc, 1<<20); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if _, err := rc.Read(make([]byte, 10)); err == nil {
		t.Error("Read after Close succeeded")
	}
	if rc.Verified() {
		t.Error("an abandoned Reader says it is verified")
	}

	func() {
		r, _ := NewReader(bytes.NewReader(data), d, int64(len(data)), "")
		io.CopyN(io.Discard, r, 1<<20)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before: a hasher outlived its Reader", runtime.NumGoroutine(), before)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// Small blobs, and any blob on one core, are hashed inline.
func TestAsyncOnlyWhenItPays(t *testing.T) {
	d := digestOf(t, []byte("x"))
	r, _ := NewReader(strings.NewReader("x"), d, 1, "")
	if r.async != nil {
		t.Error("a 1-byte blob got a hasher goroutine")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	r, _ = NewReader(strings.NewReader(""), d, AsyncThreshold, "")
	if r.async != nil {
		t.Error("a hasher goroutine with one core")
	}
}
