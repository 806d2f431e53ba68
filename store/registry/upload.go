package registry

import (
	"errors"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/blob"
)

// uploadBody is the body of a blob's PUT. It passes the bytes on as they
// stream, checked (through blob.Ensure, so that a stream the copy engine
// already verifies is not hashed twice) against the descriptor's digest
// and size, and it holds back the last declared byte until the source
// has said EOF after it. A registry commits an upload once it has the
// declared Content-Length, so a source with a byte too many must fail
// before that byte goes out, not after: the registry then never has the
// whole blob and commits nothing. Memory stays at two bytes whatever the
// blob's size.
type uploadBody struct {
	c    blob.Checker
	left int64 // declared bytes not yet passed on; < 0: size not declared
	err  error // sticky: io.EOF once the whole blob has passed and matched
}

func newUploadBody(r io.Reader, desc v1.Descriptor) (*uploadBody, error) {
	c, err := blob.Ensure(r, desc.Digest, desc.Size, "")
	if err != nil {
		return nil, err
	}
	return &uploadBody{c: c, left: desc.Size}, nil
}

// Read implements io.Reader. The bytes of a read that fails are dropped:
// they are past the declared size or complete a blob that does not match.
func (b *uploadBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	switch {
	case b.left < 0: // nothing to hold back: the verifier checks at EOF
		n, err := b.c.Read(p)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, b.fail(err)
		}
		if err != nil {
			b.err = io.EOF
		}
		return n, err
	case b.left > 1:
		n, err := b.c.Read(p[:min(int64(len(p)), b.left-1)])
		if errors.Is(err, io.EOF) { // a blob.Reader says ErrSizeMismatch; a passthrough might not
			err = fmt.Errorf("%w: the blob ended before its declared size", blob.ErrSizeMismatch)
		}
		if err != nil {
			return 0, b.fail(err)
		}
		b.left -= int64(n)
		return n, nil
	}
	// The last byte (none for an empty blob), and one more read to see
	// that the source ends there: the verifier fails on a byte past the
	// declared size, or checks the digest, at that read.
	var last [2]byte
	n, err := io.ReadFull(b.c, last[:b.left+1])
	switch {
	case int64(n) > b.left:
		return 0, b.fail(fmt.Errorf("%w: more than the declared bytes", blob.ErrSizeMismatch))
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		if !b.c.Verified() {
			return 0, b.fail(fmt.Errorf("%w: the blob ended unverified", blob.ErrSizeMismatch))
		}
	case err != nil:
		return 0, b.fail(err)
	}
	b.left, b.err = 0, io.EOF
	return copy(p, last[:n]), io.EOF
}

func (b *uploadBody) fail(err error) error {
	b.err = err
	return err
}

// failed returns the error the body failed with, or nil: nil too when the
// whole blob has passed and matched.
func (b *uploadBody) failed() error {
	if errors.Is(b.err, io.EOF) {
		return nil
	}
	return b.err
}
