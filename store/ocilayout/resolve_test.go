package ocilayout

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/store"
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

// TestResolveUnlistedManifest: a manifest blob that index.json does not
// list resolves by digest, with its media type.
func TestResolveUnlistedManifest(t *testing.T) {
	raw, desc := testManifest()
	fsys := fstest.MapFS{
		"index.json":          {Data: []byte(`{"schemaVersion":2,"manifests":[]}`)},
		BlobName(desc.Digest): {Data: raw},
	}
	got, err := OpenFS("test", fsys, "", desc.Digest.String()).Resolve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != desc.Digest || got.Size != desc.Size || got.MediaType != types.OCIManifestSchema1 {
		t.Errorf("Resolve = %+v, want %+v", got, desc)
	}
	// Without a mediaType field (OCI allows it), the fields tell.
	bare := []byte(`{"schemaVersion":2,"manifests":[]}`)
	bd := blob.DescriptorOf(bare, "")
	fsys[BlobName(bd.Digest)] = &fstest.MapFile{Data: bare}
	got, err = OpenFS("test", fsys, "", bd.Digest.String()).Resolve(context.Background())
	if err != nil || got.MediaType != types.OCIImageIndex {
		t.Errorf("Resolve of an index without mediaType = %+v, %v", got, err)
	}
}

// hugeFS serves one blob whose Stat says it is 5 GB; reading it fails the
// test.
type hugeFS struct {
	t    *testing.T
	name string
}

func (h hugeFS) Open(name string) (fs.File, error) {
	if name == "index.json" {
		return fstest.MapFS{"index.json": {Data: []byte(`{"schemaVersion":2,"manifests":[]}`)}}.Open(name)
	}
	if name != h.name {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return hugeFile{h.t}, nil
}

type hugeFile struct{ t *testing.T }

func (f hugeFile) Stat() (fs.FileInfo, error) { return hugeInfo{}, nil }
func (f hugeFile) Read([]byte) (int, error) {
	f.t.Error("the layer was read")
	return 0, io.ErrUnexpectedEOF
}
func (f hugeFile) Close() error { return nil }

type hugeInfo struct{}

func (hugeInfo) Name() string       { return "layer" }
func (hugeInfo) Size() int64        { return 5 << 30 }
func (hugeInfo) Mode() fs.FileMode  { return 0o444 }
func (hugeInfo) ModTime() time.Time { return time.Time{} }
func (hugeInfo) IsDir() bool        { return false }
func (hugeInfo) Sys() any           { return nil }

// TestResolveLayerDigest: naming a layer by digest is refused as not a
// manifest, from its size, without reading it; a small blob that is not
// a manifest is refused as such too.
func TestResolveLayerDigest(t *testing.T) {
	ctx := context.Background()
	layer := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	_, err := OpenFS("test", hugeFS{t, BlobName(layer)}, "", layer.String()).Resolve(ctx)
	if !errors.Is(err, ErrNotManifest) || !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), layer.String()) {
		t.Errorf("Resolve of a 5 GB layer = %v, want ErrNotManifest naming it", err)
	}

	small := []byte("\x1f\x8b not json")
	sd := blob.DescriptorOf(small, "")
	cfg := blob.DescriptorOf([]byte(testConfig), "")
	fsys := fstest.MapFS{
		"index.json":         {Data: []byte(`{"schemaVersion":2,"manifests":[]}`)},
		BlobName(sd.Digest):  {Data: small},
		BlobName(cfg.Digest): {Data: []byte(testConfig)},
	}
	for _, d := range []v1.Hash{sd.Digest, cfg.Digest} {
		_, err := OpenFS("test", fsys, "", d.String()).Resolve(ctx)
		if !errors.Is(err, ErrNotManifest) || !strings.Contains(err.Error(), d.String()) {
			t.Errorf("Resolve of blob %s = %v, want ErrNotManifest naming it", d, err)
		}
	}

	// A missing blob is not found; another failure is reported as it is.
	missing := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("cd", 32)}
	_, err = OpenFS("test", fsys, "", missing.String()).Resolve(ctx)
	if !errors.Is(err, store.ErrNotFound) || errors.Is(err, ErrNotManifest) {
		t.Errorf("Resolve of a missing blob = %v, want ErrNotFound", err)
	}
	_, err = OpenFS("test", deniedFS{fsys}, "", sd.Digest.String()).Resolve(ctx)
	if !errors.Is(err, fs.ErrPermission) || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Resolve of an unreadable blob = %v, want the permission error", err)
	}
}

// deniedFS refuses to open blobs.
type deniedFS struct{ fstest.MapFS }

func (d deniedFS) Open(name string) (fs.File, error) {
	if strings.HasPrefix(name, "blobs/") {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
	return d.MapFS.Open(name)
}
