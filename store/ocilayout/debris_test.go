package ocilayout

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/internal/atomicfile"
)

// TestStaleTemporariesRemoved: the next write into a layout removes the
// temporary files a killed write left (older than atomicfile.StaleAge),
// and leaves a concurrent writer's fresh one alone (issue 18 item 12).
func TestStaleTemporariesRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	writeImage(t, dir, "v1")
	blobs := filepath.Join(dir, "blobs", "sha256")
	stale, fresh := filepath.Join(blobs, ".tmp-0123456789ab-17"), filepath.Join(blobs, ".tmp-ba9876543210-18")
	staleIndex := filepath.Join(dir, ".index.json.tmp-99")
	old := time.Now().Add(-2 * atomicfile.StaleAge)
	for _, p := range []string{stale, fresh, staleIndex} {
		if err := os.WriteFile(p, []byte(strings.Repeat("x", 1000)), 0o644); err != nil {
			t.Fatal(err)
		}
		if p != fresh {
			os.Chtimes(p, old, old)
		}
	}
	writeImage(t, dir, "v2")
	for p, gone := range map[string]bool{stale: true, staleIndex: true, fresh: false} {
		if _, err := os.Stat(p); os.IsNotExist(err) != gone {
			t.Errorf("%s: removed %v, want %v", p, os.IsNotExist(err), gone)
		}
	}
}

// TestCloseRemovesLayoutMadeForNothing: a Layout whose writes made the
// directory and never wrote index.json removes it at Close; one that
// wrote index.json, or found the directory there, keeps it.
func TestCloseRemovesLayoutMadeForNothing(t *testing.T) {
	ctx := context.Background()
	cfg := blob.DescriptorOf([]byte(testConfig), types.OCIConfigJSON)
	base := t.TempDir()

	failed := Open(filepath.Join(base, "failed"), "v1", "")
	if err := failed.PushBlob(ctx, cfg, strings.NewReader(testConfig)); err != nil {
		t.Fatal(err)
	}
	failed.Close()
	if _, err := os.Stat(filepath.Join(base, "failed")); !os.IsNotExist(err) {
		t.Errorf("a layout with blobs and no index.json stayed: %v", err)
	}

	writeImage(t, filepath.Join(base, "done"), "v1")
	done := Open(filepath.Join(base, "done"), "v1", "")
	done.Close()
	if _, err := os.Stat(filepath.Join(base, "done", "index.json")); err != nil {
		t.Errorf("a complete layout was removed: %v", err)
	}

	existing := filepath.Join(base, "existing")
	os.Mkdir(existing, 0o755)
	l := Open(existing, "v1", "")
	if err := l.PushBlob(ctx, cfg, strings.NewReader(testConfig)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := os.Stat(l.blobPath(cfg.Digest)); err != nil {
		t.Errorf("a blob written into a directory that was there was removed: %v", err)
	}
}

// TestCloseKeepsBlobsAnotherLayoutRelies: two Layouts of one new
// directory, as a sync's images: the first writes a blob and fails (no
// tag); the second found that blob (HasBlob) and skipped its push. The
// first's Close must not remove it: the second then tags an image whose
// blobs are all there.
func TestCloseKeepsBlobsAnotherLayoutRelies(t *testing.T) {
	ctx := context.Background()
	cfg := blob.DescriptorOf([]byte(testConfig), types.OCIConfigJSON)
	dir := filepath.Join(t.TempDir(), "sync")

	failed := Open(dir, "a", "")
	if err := failed.PushBlob(ctx, cfg, strings.NewReader(testConfig)); err != nil {
		t.Fatal(err)
	}
	other := Open(dir, "b", "")
	if has, err := other.HasBlob(ctx, cfg); err != nil || !has {
		t.Fatalf("HasBlob of the blob the first Layout wrote: %v %v", has, err)
	}
	failed.Close()
	if _, err := os.Stat(failed.blobPath(cfg.Digest)); err != nil {
		t.Fatalf("the failed Layout's Close removed a blob the other relies on: %v", err)
	}
	raw, desc := testManifest()
	if err := other.Tag(ctx, desc, raw); err != nil {
		t.Fatal(err)
	}
	other.Close()
	if _, err := os.Stat(other.blobPath(cfg.Digest)); err != nil {
		t.Errorf("the tagged image's config is gone: %v", err)
	}

	// Alone again, a Layout made for nothing is still removed.
	last := Open(filepath.Join(t.TempDir(), "alone"), "v1", "")
	if err := last.PushBlob(ctx, cfg, strings.NewReader(testConfig)); err != nil {
		t.Fatal(err)
	}
	last.Close()
	if _, err := os.Stat(last.dir); !os.IsNotExist(err) {
		t.Errorf("a layout made for nothing stayed: %v", err)
	}
}
