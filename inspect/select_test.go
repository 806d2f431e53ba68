package inspect

import (
	"context"
	"errors"
	"io"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/platform"
)

// indexSource names one index of two Windows platforms.
type indexSource struct{ raw []byte }

func (s indexSource) Resolve(context.Context) (v1.Descriptor, error) {
	return blob.DescriptorOf(s.raw, types.OCIImageIndex), nil
}
func (s indexSource) FetchManifest(context.Context, v1.Descriptor) ([]byte, error) { return s.raw, nil }
func (s indexSource) FetchBlob(context.Context, v1.Descriptor) (io.ReadCloser, error) {
	return nil, errors.New("no blobs")
}
func (s indexSource) Close() error { return nil }

func TestSelect(t *testing.T) {
	raw := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` +
		`{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","platform":{"os":"windows","architecture":"amd64","os.version":"10.0.17763.1"}},` +
		`{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","platform":{"os":"windows","architecture":"amd64","os.version":"10.0.20348.1"}}]}`)
	ctx := context.Background()
	src := indexSource{raw}
	for _, tc := range []struct {
		specs  []string
		single bool
		raw    bool
	}{
		{nil, false, false},
		{[]string{"ltsc2022"}, true, true},
		{[]string{"all"}, false, true},
	} {
		sel, err := Select(ctx, src, tc.specs)
		if err != nil || sel.Single != tc.single || (sel.Raw != nil) != tc.raw || sel.Root.MediaType != types.OCIImageIndex {
			t.Errorf("Select(%v) = %+v, %v; want single %v, raw %v", tc.specs, sel, err, tc.single, tc.raw)
		}
	}
	if _, err := Select(ctx, src, []string{"nope/nope/nope/nope"}); !errors.Is(err, platform.ErrInvalidSpec) {
		t.Errorf("Select(bad spec) = %v; want ErrInvalidSpec", err)
	}
	if _, err := Select(ctx, src, []string{"linux/arm64"}); !errors.Is(err, platform.ErrNoMatch) {
		t.Errorf("Select(linux/arm64) = %v; want ErrNoMatch", err)
	}
}
