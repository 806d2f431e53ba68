package blob

import (
	"errors"
	"fmt"
	"io"
)

// ErrTooLarge means a document (a manifest, an index, a small file of a
// layout or archive) is larger than its reader allows. Its message reads
// "larger than N bytes" once wrapped by ReadAtMost.
var ErrTooLarge = errors.New("larger")

// ReadAtMost reads all of r if it holds at most max bytes. Otherwise it
// fails with an error wrapping ErrTooLarge, having read max+1 bytes and no
// more: a hostile file cannot make ferry hold more than the limit.
func ReadAtMost(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w than %d bytes", ErrTooLarge, max)
	}
	return b, nil
}
