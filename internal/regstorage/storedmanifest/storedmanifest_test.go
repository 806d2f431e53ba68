package storedmanifest

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/cache/memory"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/opencontainers/go-digest"

	"github.com/ferry-dev/ferry/blob"
)

func TestRead(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	// A descriptor cache, as a registry configuration may ask for.
	ns, err := storage.NewRegistry(ctx, d, storage.BlobDescriptorCacheProvider(memory.NewInMemoryBlobDescriptorCacheProvider(16)))
	if err != nil {
		t.Fatal(err)
	}
	dataPath := func(dg digest.Digest) string {
		enc := dg.Encoded()
		return "/docker/registry/v2/blobs/sha256/" + enc[:2] + "/" + enc + "/data"
	}
	put := func(p []byte) digest.Digest {
		t.Helper()
		dg := digest.FromBytes(p)
		if err := d.PutContent(ctx, dataPath(dg), p); err != nil {
			t.Fatal(err)
		}
		return dg
	}
	small := []byte(`{"schemaVersion":2}`)
	if got, err := Read(ctx, ns, put(small)); err != nil || !bytes.Equal(got, small) {
		t.Errorf("stored manifest: %q, %v", got, err)
	}
	if got, err := Read(ctx, ns, put(bytes.Repeat([]byte("x"), MaxSize))); err != nil || len(got) != MaxSize {
		t.Errorf("at the limit: %d bytes, %v", len(got), err)
	}
	if _, err := Read(ctx, ns, put(bytes.Repeat([]byte("x"), MaxSize+1))); !errors.Is(err, blob.ErrTooLarge) {
		t.Errorf("larger than the limit: %v", err)
	}
	if _, err := Read(ctx, ns, digest.FromString("absent")); !errors.Is(err, distribution.ErrBlobUnknown) {
		t.Errorf("absent: %v", err)
	}
	// Removed while the cache still describes it: distribution's reader
	// reads nothing, which is no manifest.
	gone := put([]byte("gone"))
	if _, err := Read(ctx, ns, gone); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, dataPath(gone)); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(ctx, ns, gone); !errors.Is(err, distribution.ErrBlobUnknown) {
		t.Errorf("removed since cached: %v", err)
	}
}
