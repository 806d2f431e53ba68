// Package blob verifies content-addressed bytes while they stream: every blob
// ferry moves, from any source, passes through a Reader that counts and hashes
// it and fails at EOF if the size or the digest is not the declared one.
package blob

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrDigestMismatch means the bytes do not hash to the declared digest.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrSizeMismatch means more or fewer bytes arrived than declared.
	ErrSizeMismatch = errors.New("size mismatch")
	// ErrUnsupportedAlgorithm means the digest's algorithm is not sha256 or sha512.
	ErrUnsupportedAlgorithm = errors.New("unsupported digest algorithm")
)

// DescriptorOf describes bytes held in memory (a manifest, a config): their
// sha256 digest and size, with media type mt.
func DescriptorOf(raw []byte, mt types.MediaType) v1.Descriptor {
	d, size, _ := v1.SHA256(bytes.NewReader(raw)) // reading memory does not fail
	return v1.Descriptor{MediaType: mt, Digest: d, Size: size}
}

// NewHash returns a hash for the digest's algorithm.
func NewHash(d v1.Hash) (hash.Hash, error) {
	switch d.Algorithm {
	case "sha256":
		return sha256.New(), nil
	case "sha512":
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("%w %q in %s", ErrUnsupportedAlgorithm, d.Algorithm, d)
}

// Reader passes bytes through while counting and hashing them. Read returns
// an error wrapping ErrSizeMismatch as soon as more than the declared size
// has been read, and at EOF an error wrapping ErrSizeMismatch or
// ErrDigestMismatch when the content is not what was declared. Callers must
// read to EOF before trusting the bytes.
type Reader struct {
	r      io.Reader
	h      hash.Hash
	want   v1.Hash
	size   int64 // -1: unknown
	n      int64
	source string
	done   bool
	err    error
}

// NewReader wraps r to verify that it yields exactly size bytes (size < 0:
// any) hashing to want. source names where the bytes come from (a URL, a
// file) for error messages; it may be empty.
func NewReader(r io.Reader, want v1.Hash, size int64, source string) (*Reader, error) {
	h, err := NewHash(want)
	if err != nil {
		return nil, err
	}
	return &Reader{r: r, h: h, want: want, size: size, source: source}, nil
}

// Read implements io.Reader. When the size is known the digest is checked
// as soon as the last declared byte is read, not only at EOF: consumers
// such as an HTTP upload with a Content-Length stop reading there.
func (v *Reader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	if n > 0 {
		if v.done {
			v.err = v.errorf("%w: more than the declared %d bytes", ErrSizeMismatch, v.size)
			return 0, v.err
		}
		v.h.Write(p[:n])
		v.n += int64(n)
		if v.size >= 0 && v.n > v.size {
			v.err = v.errorf("%w: more than the declared %d bytes", ErrSizeMismatch, v.size)
			return n, v.err
		}
		if v.size >= 0 && v.n == v.size {
			if verr := v.check(); verr != nil {
				v.err = verr
				return n, verr
			}
			v.done = true
		}
	}
	if errors.Is(err, io.EOF) && !v.done {
		if verr := v.check(); verr != nil {
			v.err = verr
			return n, verr
		}
		v.done = true
	}
	return n, err
}

func (v *Reader) check() error {
	if v.size >= 0 && v.n != v.size {
		return v.errorf("%w: got %d bytes, declared %d", ErrSizeMismatch, v.n, v.size)
	}
	got := v1.Hash{Algorithm: v.want.Algorithm, Hex: fmt.Sprintf("%x", v.h.Sum(nil))}
	if got != v.want {
		return v.errorf("%w: content hashes to %s", ErrDigestMismatch, got)
	}
	return nil
}

func (v *Reader) errorf(format string, args ...any) error {
	msg := fmt.Errorf(format, args...)
	if v.source != "" {
		return fmt.Errorf("blob %s from %s: %w", v.want, v.source, msg)
	}
	return fmt.Errorf("blob %s: %w", v.want, msg)
}

// N returns the number of bytes read so far.
func (v *Reader) N() int64 { return v.n }

// Verified reports whether the whole blob was read and matched.
func (v *Reader) Verified() bool { return v.done }

// ReadCloser is a Reader that closes the underlying stream.
type ReadCloser struct {
	*Reader
	io.Closer
}

// NewReadCloser is NewReader for an io.ReadCloser.
func NewReadCloser(rc io.ReadCloser, want v1.Hash, size int64, source string) (*ReadCloser, error) {
	r, err := NewReader(rc, want, size, source)
	if err != nil {
		return nil, err
	}
	return &ReadCloser{Reader: r, Closer: rc}, nil
}

// Verifying is implemented by streams that check size and digest themselves,
// so that callers need not hash the bytes a second time.
type Verifying interface {
	// VerifiesContent is a marker method.
	VerifiesContent()
}

// VerifiesContent marks Reader as verifying.
func (*Reader) VerifiesContent() {}

// Passthrough is implemented by readers that pass on the bytes of a
// *Reader (a progress counter around one, a fetcher's stream), so that a
// store can see that what it is given is already being verified.
type Passthrough interface {
	// VerifiedBy returns the Reader whose bytes this reader passes on
	// unchanged, or nil.
	VerifiedBy() *Reader
}

// VerifiedBy implements Passthrough: a Reader verifies itself.
func (v *Reader) VerifiedBy() *Reader { return v }

// Checker is what Ensure returns: the bytes, and whether they matched.
type Checker interface {
	io.Reader
	// Verified reports whether the whole blob was read and matched.
	Verified() bool
}

// Ensure returns a reader of r's bytes whose Verified says whether they
// were exactly size bytes hashing to want. When r already passes on a
// Reader checking that same digest and size, its verdict is reused and
// the bytes are not hashed a second time; otherwise r is wrapped in a new
// Reader. Stores use it so that a blob the copy engine already verifies
// while streaming costs one hash, not two.
func Ensure(r io.Reader, want v1.Hash, size int64, source string) (Checker, error) {
	if p, ok := r.(Passthrough); ok {
		if v := p.VerifiedBy(); v != nil && v.want == want && v.size == size && v.n == 0 {
			return reused{Reader: r, v: v}, nil
		}
	}
	return NewReader(r, want, size, source)
}

// reused reads through a passthrough and takes its Reader's verdict.
type reused struct {
	io.Reader
	v *Reader
}

func (r reused) Verified() bool { return r.v.Verified() }

// bufSize is the copy buffer: large enough that a gigabyte moves in a
// few thousand system calls, not tens of thousands.
const bufSize = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// Copy is io.Copy with a pooled 256 KiB buffer, used for blob bodies. It
// hides dst's ReadFrom, whose fallback copies in 32 KiB steps.
func Copy(dst io.Writer, src io.Reader) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	return io.CopyBuffer(struct{ io.Writer }{dst}, src, *bp)
}
