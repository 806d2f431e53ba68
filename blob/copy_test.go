package blob

import (
	"archive/tar"
	"bytes"
	"errors"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// CopyVerified reports the reader's mismatch even when the writer refuses
// the bytes first (a tar entry one byte too long), and writes nothing of
// a failed read.
func TestCopyVerified(t *testing.T) {
	data := []byte(strings.Repeat("layer", 100))
	d := digestOf(t, data)
	desc := v1.Descriptor{Digest: d, Size: int64(len(data))}
	for _, c := range []struct {
		name    string
		content []byte
		want    error
	}{
		{"good", data, nil},
		{"corrupt", append([]byte("L"), data[1:]...), ErrDigestMismatch},
		{"short", data[:10], ErrSizeMismatch},
		{"long", append(append([]byte{}, data...), 'x'), ErrSizeMismatch},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			if err := tw.WriteHeader(&tar.Header{Name: "blob", Typeflag: tar.TypeReg, Size: desc.Size}); err != nil {
				t.Fatal(err)
			}
			n, err := CopyVerified(tw, bytes.NewReader(c.content), desc)
			if !errors.Is(err, c.want) || (c.want != nil) == (err == nil) {
				t.Fatalf("CopyVerified = %d, %v; want an error wrapping %v", n, err, c.want)
			}
			if c.want != nil && n == desc.Size {
				t.Errorf("wrote all %d bytes of a blob that does not match", n)
			}
		})
	}
}
