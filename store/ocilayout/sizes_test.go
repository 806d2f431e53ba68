package ocilayout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/mediatype"
)

// TestNegativeSizesRefused: a layout whose index.json or manifest gives a
// descriptor a negative size is refused when read, naming the descriptor
// (issue 18 item 6), rather than the size passing as "unknown".
func TestNegativeSizesRefused(t *testing.T) {
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + strings.Repeat("c", 64) + `","size":2},` +
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:` + strings.Repeat("a", 64) + `","size":-5}]}`)
	h, _, _ := v1.SHA256(strings.NewReader(string(manifest)))
	entry := func(size int) string {
		return fmt.Sprintf(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}`, h, size)
	}
	layout := func(index string) fstest.MapFS {
		return fstest.MapFS{
			"oci-layout": {Data: []byte(LayoutFileContent)},
			"index.json": {Data: []byte(index)},
			BlobName(h):  {Data: manifest},
		}
	}
	ctx := context.Background()

	l := OpenFS("bad-index", layout(entry(-5)), "v1", "")
	if _, err := l.Resolve(ctx); !errors.Is(err, mediatype.ErrNegativeSize) || !strings.Contains(err.Error(), "index.json") {
		t.Errorf("Resolve with index.json size -5: %v, want ErrNegativeSize naming index.json", err)
	}

	l = OpenFS("bad-manifest", layout(entry(len(manifest))), "v1", "")
	desc, err := l.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.FetchManifest(ctx, desc); !errors.Is(err, mediatype.ErrNegativeSize) || !strings.Contains(err.Error(), "layer 1 sha256:aaaa") {
		t.Errorf("FetchManifest of a manifest with a layer of size -5: %v, want ErrNegativeSize naming the layer", err)
	}
}
