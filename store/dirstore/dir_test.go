package dirstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/store"
)

func manifestWithConfig(cfg string) []byte {
	c := blob.DescriptorOf([]byte(cfg), types.OCIConfigJSON)
	return []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":` +
		strconv.Itoa(len(cfg)) + `,"digest":"` + c.Digest.String() + `"},"layers":[]}`)
}

// TestFetchManifestNotInDir: a manifest that is neither an instance
// manifest of the directory nor its manifest.json is not found, naming
// its digest (was: a size mismatch against manifest.json, as if the
// directory were corrupt). manifest.json itself and instance manifests
// are served, and a corrupt instance manifest is still a mismatch.
func TestFetchManifestNotInDir(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := Open(dir)
	top := manifestWithConfig(`{}`)
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), top, 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := d.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := blob.DescriptorOf(top, types.OCIManifestSchema1); root.Digest != want.Digest || root.Size != want.Size || root.MediaType != want.MediaType {
		t.Fatalf("Resolve = %+v, want %+v", root, want)
	}
	if raw, err := d.FetchManifest(ctx, root); err != nil || string(raw) != string(top) {
		t.Fatalf("FetchManifest(manifest.json) = %q, %v", raw, err)
	}

	other := manifestWithConfig(`{"architecture":"arm64"}`)
	od := blob.DescriptorOf(other, types.OCIManifestSchema1)
	_, err = d.FetchManifest(ctx, od)
	if !errors.Is(err, store.ErrNotFound) || errors.Is(err, blob.ErrSizeMismatch) || errors.Is(err, blob.ErrDigestMismatch) ||
		!strings.Contains(err.Error(), od.Digest.String()) {
		t.Errorf("FetchManifest(absent) = %v, want ErrNotFound naming %s", err, od.Digest)
	}

	// Same size as manifest.json, another digest: not found either.
	same := manifestWithConfig(`[]`)
	if len(same) != len(top) {
		t.Fatalf("test manifests differ in size: %d, %d", len(same), len(top))
	}
	sd := blob.DescriptorOf(same, types.OCIManifestSchema1)
	if _, err := d.FetchManifest(ctx, sd); !errors.Is(err, store.ErrNotFound) || errors.Is(err, blob.ErrDigestMismatch) {
		t.Errorf("FetchManifest(same size, absent) = %v, want ErrNotFound", err)
	}

	// An instance manifest is served; a corrupt one is a mismatch.
	inst := filepath.Join(dir, od.Digest.Hex+".manifest.json")
	if err := os.WriteFile(inst, other, 0o644); err != nil {
		t.Fatal(err)
	}
	if raw, err := d.FetchManifest(ctx, od); err != nil || string(raw) != string(other) {
		t.Errorf("FetchManifest(instance) = %q, %v", raw, err)
	}
	bad := append([]byte{}, other...)
	bad[len(bad)-2] = ' '
	if err := os.WriteFile(inst, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.FetchManifest(ctx, od); !errors.Is(err, blob.ErrDigestMismatch) {
		t.Errorf("FetchManifest(corrupt instance) = %v, want ErrDigestMismatch", err)
	}
	if err := os.WriteFile(inst, other[:len(other)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.FetchManifest(ctx, od); !errors.Is(err, blob.ErrSizeMismatch) {
		t.Errorf("FetchManifest(truncated instance) = %v, want ErrSizeMismatch", err)
	}

	// No manifest.json at all: not found.
	os.Remove(inst)
	os.Remove(filepath.Join(dir, ManifestFile))
	if _, err := d.FetchManifest(ctx, od); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FetchManifest with no manifest.json = %v, want ErrNotFound", err)
	}
}
