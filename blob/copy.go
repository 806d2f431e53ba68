package blob

import (
	"errors"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// CopyVerified copies the blob desc names from r to dst, checking as it
// goes (through Ensure, so a stream already verified is not hashed twice)
// that r yields exactly desc.Size bytes hashing to desc.Digest. It fails
// with an error wrapping ErrSizeMismatch or ErrDigestMismatch when they do
// not; that error wins over dst's (a tar entry refusing the byte past its
// declared size), and the bytes of a failed read are not written. Stores
// write every blob through it and keep the blob only when it returns nil.
func CopyVerified(dst io.Writer, r io.Reader, desc v1.Descriptor) (int64, error) {
	c, err := Ensure(r, desc.Digest, desc.Size, "")
	if err != nil {
		return 0, err
	}
	n, err := Copy(dst, readFailsFirst{c})
	if err != nil {
		return n, err
	}
	if !c.Verified() {
		return n, fmt.Errorf("%w: %d bytes read, not verified against the declared %d", ErrSizeMismatch, n, desc.Size)
	}
	return n, nil
}

// readFailsFirst drops the bytes of a read that fails: they are past the
// declared size or complete a blob that does not match, and passing them
// on would let the writer's error hide the reader's.
type readFailsFirst struct{ r io.Reader }

func (f readFailsFirst) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	return n, err
}
