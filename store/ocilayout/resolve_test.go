package ocilayout

import (
	"bytes"
	"context"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/blob"
)

const testConfig = `{}`

func testManifest() ([]byte, v1.Descriptor) {
	cfg := blob.DescriptorOf([]byte(testConfig), types.OCIConfigJSON)
	raw := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"` + cfg.Digest.String() + `"},"layers":[]}`)
	return raw, blob.DescriptorOf(raw, types.OCIManifestSchema1)
}

// writeImage writes the test image into the layout at dir under each tag.
func writeImage(t *testing.T, dir string, tags ...string) v1.Descriptor {
	t.Helper()
	ctx := context.Background()
	raw, desc := testManifest()
	for _, tag := range tags {
		l := Open(dir, tag, "")
		cfg := blob.DescriptorOf([]byte(testConfig), types.OCIConfigJSON)
		if err := l.PushBlob(ctx, cfg, strings.NewReader(testConfig)); err != nil {
			t.Fatal(err)
		}
		if err := l.Tag(ctx, desc, raw); err != nil {
			t.Fatal(err)
		}
	}
	return desc
}

// TestResolveDigestUnderTwoTags: a manifest listed in index.json under two
// tags is one image when the layout is opened by its digest.
func TestResolveDigestUnderTwoTags(t *testing.T) {
	dir := t.TempDir()
	want := writeImage(t, dir, "v1", "latest")
	ctx := context.Background()
	l := Open(dir, "", want.Digest.String())
	got, err := l.Resolve(ctx)
	if err != nil {
		t.Fatalf("Resolve by digest: %v", err)
	}
	if got.Digest != want.Digest || got.Size != want.Size || got.MediaType != want.MediaType {
		t.Errorf("Resolve = %+v, want %+v", got, want)
	}
	if _, ok := got.Annotations[RefNameAnnotation]; ok {
		t.Errorf("Resolve by digest kept a tag: %v", got.Annotations)
	}
	raw, err := l.FetchManifest(ctx, got)
	if err != nil {
		t.Fatal(err)
	}
	if wantRaw, _ := testManifest(); !bytes.Equal(raw, wantRaw) {
		t.Errorf("FetchManifest = %s", raw)
	}
	// By tag, each still resolves, with its tag; with neither, the
	// layout holds two entries to choose from.
	for _, tag := range []string{"v1", "latest"} {
		d, err := Open(dir, tag, "").Resolve(ctx)
		if err != nil || d.Digest != want.Digest || d.Annotations[RefNameAnnotation] != tag {
			t.Errorf("Resolve :%s = %+v, %v", tag, d, err)
		}
	}
	if _, err := Open(dir, "", "").Resolve(ctx); err == nil || !strings.Contains(err.Error(), "holds 2 images") {
		t.Errorf("Resolve without a name = %v, want 'holds 2 images'", err)
	}
}
