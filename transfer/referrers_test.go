package transfer

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/store"
)

// referrersSource is a memSource with a referrers API that lists none.
type referrersSource struct{ *memSource }

func (referrersSource) Referrers(context.Context, v1.Descriptor) ([]v1.Descriptor, error) {
	return nil, nil
}
func (referrersSource) AddReferrer(context.Context, v1.Descriptor, v1.Descriptor) error { return nil }

// TestCopyReferrersRefusedBeforeAnythingMoves: with WithReferrers, a
// source that cannot list referrers or a destination that cannot record
// them (an archive) fails the copy before a blob moves or the tag is
// written, rather than after: the archive would otherwise be written, with
// the image and without its referrers, by a copy that failed.
func TestCopyReferrersRefusedBeforeAnythingMoves(t *testing.T) {
	layer := []byte("a layer")
	layerDesc := blob.DescriptorOf(layer, types.OCILayer)
	cfg := []byte(`{}`)
	cfgDesc := blob.DescriptorOf(cfg, types.OCIConfigJSON)
	raw, err := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cfgDesc, Layers: []v1.Descriptor{layerDesc}})
	if err != nil {
		t.Fatal(err)
	}
	mem := &memSource{root: blob.DescriptorOf(raw, types.OCIManifestSchema1), raw: raw,
		blobs: map[v1.Hash][]byte{layerDesc.Digest: layer, cfgDesc.Digest: cfg}}
	for _, c := range []struct {
		src  store.Source
		want string
	}{
		{mem, "cannot list referrers"},
		{referrersSource{mem}, "cannot record referrers"},
	} {
		dst := &orderTarget{}
		_, err := Copy(context.Background(), c.src, dst, WithReferrers())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%T: %v, want %q", c.src, err, c.want)
		}
		if len(dst.pushed) != 0 {
			t.Errorf("%T: %d blobs pushed before the referrers were refused", c.src, len(dst.pushed))
		}
	}
}
