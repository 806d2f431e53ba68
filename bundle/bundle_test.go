package bundle

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/ocilayout"
)

// TestPushTwoRefsOneManifest: a bundle in which two references name the
// same manifest pushes both (each is opened by the manifest's digest,
// which index.json lists twice).
func TestPushTwoRefsOneManifest(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	srcDir := filepath.Join(tmp, "src")
	src := ocilayout.Open(srcDir, "v1", "")
	cfgRaw := []byte(`{}`)
	cfg := blob.DescriptorOf(cfgRaw, types.OCIConfigJSON)
	if err := src.PushBlob(ctx, cfg, strings.NewReader(string(cfgRaw))); err != nil {
		t.Fatal(err)
	}
	raw := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"` + cfg.Digest.String() + `"},"layers":[]}`)
	desc := blob.DescriptorOf(raw, types.OCIManifestSchema1)
	if err := src.Tag(ctx, desc, raw); err != nil {
		t.Fatal(err)
	}

	p := filepath.Join(tmp, "bundle.tar")
	var images []Image
	for _, r := range []string{"reg.example/team/app:v1", "reg.example/team/app:stable"} {
		ref, err := name.ParseReference(r)
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, Image{Ref: ref, Source: ocilayout.Open(srcDir, "v1", "")})
	}
	if _, err := Create(ctx, p, images); err != nil {
		t.Fatal(err)
	}
	list, err := List(p)
	if err != nil || len(list) != 2 || list[0].Descriptor.Digest != list[1].Descriptor.Digest {
		t.Fatalf("List = %+v, %v; want two entries with one digest", list, err)
	}

	open := &layoutResolver{dir: filepath.Join(tmp, "dst")}
	res, err := Push(ctx, p, "mirror.example/m", open)
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	if len(res) != 2 || len(open.opened) != 2 {
		t.Fatalf("Push results %+v, opened %v; want both images", res, open.opened)
	}
	for _, tag := range []string{"v1", "stable"} {
		d, err := ocilayout.Open(filepath.Join(tmp, "dst"), tag, "").Resolve(ctx)
		if err != nil || d.Digest != desc.Digest {
			t.Errorf("pushed :%s = %+v, %v; want %s", tag, d, err, desc.Digest)
		}
	}
}

// layoutResolver opens every target as the tag of one OCI layout that the
// reference names, and records the references.
type layoutResolver struct {
	dir    string
	opened []string
}

func (r *layoutResolver) Source(context.Context, string) (store.Source, error) {
	return nil, errors.New("layoutResolver opens targets only")
}

func (r *layoutResolver) Target(_ context.Context, ref string, _ store.Source) (store.Target, error) {
	dst, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	r.opened = append(r.opened, dst.String())
	return ocilayout.Open(r.dir, dst.Identifier(), ""), nil
}
