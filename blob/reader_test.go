package blob

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func digestOf(t *testing.T, b []byte) v1.Hash {
	t.Helper()
	h, _, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestReader(t *testing.T) {
	data := []byte(strings.Repeat("windows", 1000))
	d := digestOf(t, data)
	bad := append([]byte{}, data...)
	bad[10] ^= 1

	cases := []struct {
		name    string
		content []byte
		size    int64
		want    error
	}{
		{"good", data, int64(len(data)), nil},
		{"good unknown size", data, -1, nil},
		{"corrupt", bad, int64(len(data)), ErrDigestMismatch},
		{"short", data[:100], int64(len(data)), ErrSizeMismatch},
		{"long", append(append([]byte{}, data...), 'x'), int64(len(data)), ErrSizeMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(tc.content), d, tc.size, "http://example/x")
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.Copy(io.Discard, r)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.want != nil && !strings.Contains(err.Error(), d.String()) {
				t.Errorf("error %q does not name the digest", err)
			}
			if tc.want != nil && !strings.Contains(err.Error(), "http://example/x") {
				t.Errorf("error %q does not name the source", err)
			}
			if (tc.want == nil) != r.Verified() {
				t.Errorf("Verified() = %v", r.Verified())
			}
		})
	}
}

// A consumer that stops after the declared size (as an HTTP upload with a
// Content-Length does) still sees the mismatch.
func TestReaderChecksAtDeclaredSize(t *testing.T) {
	data := []byte("0123456789")
	bad := []byte("0123456788")
	r, _ := NewReader(bytes.NewReader(bad), digestOf(t, data), 10, "")
	_, err := io.Copy(io.Discard, io.LimitReader(r, 10))
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("got %v", err)
	}
}

func TestUnsupportedAlgorithm(t *testing.T) {
	_, err := NewReader(strings.NewReader(""), v1.Hash{Algorithm: "md5", Hex: "00"}, 0, "")
	if !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Fatalf("got %v", err)
	}
}

func TestEnsureReusesAVerifier(t *testing.T) {
	data := []byte("hello, layer")
	d, n, _ := v1.SHA256(bytes.NewReader(data))
	inner, _ := NewReader(bytes.NewReader(data), d, n, "")
	c, err := Ensure(passthrough{inner}, d, n, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*Reader); ok {
		t.Fatal("Ensure wrapped a reader that already verifies the same digest")
	}
	if _, err := io.ReadAll(c); err != nil || !c.Verified() {
		t.Fatalf("err %v verified %v", err, c.Verified())
	}
	// Another digest: wrapped, and the mismatch is caught.
	other, _ := NewReader(bytes.NewReader(data), d, n, "")
	wrong := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
	c, _ = Ensure(passthrough{other}, wrong, n, "")
	if _, err := io.ReadAll(c); !errors.Is(err, ErrDigestMismatch) || c.Verified() {
		t.Fatalf("err %v verified %v", err, c.Verified())
	}
	// A plain reader is wrapped.
	c, _ = Ensure(bytes.NewReader(data[:3]), d, n, "")
	if _, err := io.ReadAll(c); !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("short plain reader: %v", err)
	}
}

type passthrough struct{ r *Reader }

func (p passthrough) Read(b []byte) (int, error) { return p.r.Read(b) }
func (p passthrough) VerifiedBy() *Reader        { return p.r }

func TestReadAtMost(t *testing.T) {
	b, err := ReadAtMost(strings.NewReader("12345"), 5)
	if err != nil || string(b) != "12345" {
		t.Fatalf("at the limit: %q %v", b, err)
	}
	src := strings.NewReader("123456789")
	_, err = ReadAtMost(src, 5)
	if !errors.Is(err, ErrTooLarge) || err.Error() != "larger than 5 bytes" {
		t.Fatalf("over the limit: %v", err)
	}
	if left := src.Len(); left != 3 {
		t.Errorf("read %d bytes past the limit+1", 3-left)
	}
}
