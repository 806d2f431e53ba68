package transfer

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/mediatype"
	"github.com/ferry-dev/ferry/store"
)

// rawSource serves one manifest and no blob.
type rawSource struct{ raw []byte }

func (s rawSource) desc() v1.Descriptor {
	h, _, _ := v1.SHA256(strings.NewReader(string(s.raw)))
	return v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: h, Size: int64(len(s.raw))}
}
func (s rawSource) Resolve(context.Context) (v1.Descriptor, error) { return s.desc(), nil }
func (s rawSource) FetchManifest(context.Context, v1.Descriptor) ([]byte, error) {
	return s.raw, nil
}
func (s rawSource) FetchBlob(context.Context, v1.Descriptor) (io.ReadCloser, error) {
	return nil, store.ErrNotFound
}
func (s rawSource) Close() error { return nil }

// failTarget fails the test on any write.
type failTarget struct{ t *testing.T }

func (f failTarget) HasBlob(context.Context, v1.Descriptor) (bool, error) { return false, nil }
func (f failTarget) PushBlob(_ context.Context, d v1.Descriptor, _ io.Reader) error {
	f.t.Errorf("blob %s (size %d) pushed", d.Digest, d.Size)
	return nil
}
func (f failTarget) PushManifest(_ context.Context, d v1.Descriptor, _ []byte) error {
	f.t.Errorf("manifest %s pushed", d.Digest)
	return nil
}
func (f failTarget) Tag(_ context.Context, d v1.Descriptor, _ []byte) error {
	f.t.Errorf("manifest %s tagged", d.Digest)
	return nil
}
func (f failTarget) Close() error { return nil }

// TestCopyRefusesNegativeSize: a manifest from any source with a
// descriptor of size -5 is refused before anything is copied (issue 18
// item 6); blob readers take a negative size for "unknown" and would not
// check it.
func TestCopyRefusesNegativeSize(t *testing.T) {
	src := rawSource{raw: []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + strings.Repeat("c", 64) + `","size":-5},"layers":[]}`)}
	_, err := Copy(context.Background(), src, failTarget{t})
	if !errors.Is(err, mediatype.ErrNegativeSize) || !strings.Contains(err.Error(), "config sha256:cccc") {
		t.Errorf("Copy: %v, want ErrNegativeSize naming the config", err)
	}
}
