package fsdriver

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// newWrapped returns the Windows wrapper around a filesystem driver on a
// new directory, on every OS, so that its behaviour is tested everywhere.
func newWrapped(t *testing.T) (storagedriver.StorageDriver, string) {
	t.Helper()
	dir := t.TempDir()
	d, err := filesystem.FromParameters(map[string]any{"rootdirectory": dir})
	if err != nil {
		t.Fatal(err)
	}
	return windowsDriver{d}, dir
}

func TestPutContentReplaces(t *testing.T) {
	ctx := context.Background()
	d, dir := newWrapped(t)
	for _, v := range []string{"one", "two"} {
		if err := d.PutContent(ctx, "/repo/_manifests/tags/v1/current/link", []byte(v)); err != nil {
			t.Fatalf("PutContent %s: %v", v, err)
		}
	}
	b, err := d.GetContent(ctx, "/repo/_manifests/tags/v1/current/link")
	if err != nil || string(b) != "two" {
		t.Fatalf("content %q, %v; want two", b, err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "repo", "_manifests", "tags", "v1", "current", "*.tmp"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestListAndWalkUseSlashes(t *testing.T) {
	ctx := context.Background()
	d, _ := newWrapped(t)
	for _, p := range []string{"/r/a/link", "/r/b/link"} {
		if err := d.PutContent(ctx, p, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := d.List(ctx, "/r")
	slices.Sort(keys)
	if err != nil || !slices.Equal(keys, []string{"/r/a", "/r/b"}) {
		t.Errorf("List = %q, %v", keys, err)
	}
	var walked []string
	err = d.Walk(ctx, "/r", func(fi storagedriver.FileInfo) error {
		walked = append(walked, fi.Path())
		return nil
	})
	want := []string{"/r/a", "/r/a/link", "/r/b", "/r/b/link"}
	if err != nil || !slices.Equal(walked, want) {
		t.Errorf("Walk = %q, %v; want %q", walked, err, want)
	}
	// Every key List gives is one the driver accepts back.
	for _, k := range keys {
		if _, err := d.Stat(ctx, k+"/link"); err != nil {
			t.Errorf("Stat of a listed key: %v", err)
		}
	}
}

// TestPutContentOverAnOpenFile: on Windows a reader holding the file open
// makes the rename fail; PutContent waits for it briefly, and when it is
// held for good fails cleanly, leaving the old content and no temporary.
func TestPutContentOverAnOpenFile(t *testing.T) {
	ctx := context.Background()
	d, dir := newWrapped(t)
	const key = "/r/link"
	if err := d.PutContent(ctx, key, []byte("old")); err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(dir, "r", "link")

	// Held briefly: the retry gets through.
	f, err := os.Open(full)
	if err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(30 * time.Millisecond); f.Close() }()
	if err := d.PutContent(ctx, key, []byte("new")); err != nil {
		t.Fatalf("PutContent while a reader briefly holds the file: %v", err)
	}

	// Held throughout.
	f, err = os.Open(full)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = d.PutContent(ctx, key, []byte("newer"))
	if runtime.GOOS != "windows" {
		if err != nil {
			t.Fatalf("PutContent over an open file: %v", err)
		}
		return
	}
	if err == nil || !inUse(err) {
		t.Fatalf("PutContent over a file held open = %v, want a sharing error", err)
	}
	f.Close()
	if b, _ := os.ReadFile(full); string(b) != "new" {
		t.Errorf("content after the failed replace = %q, want new", b)
	}
	entries, _ := os.ReadDir(filepath.Dir(full))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}
