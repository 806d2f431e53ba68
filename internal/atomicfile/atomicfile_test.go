package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func TestWriteReplaces(t *testing.T) {
	p := filepath.Join(t.TempDir(), "index.json")
	for _, v := range []string{"one", "two"} {
		if err := Write(p, []byte(v)); err != nil {
			t.Fatalf("Write %s: %v", v, err)
		}
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "two" {
		t.Errorf("content %q, %v; want two", b, err)
	}
	assertAlone(t, p)
}

// TestReplaceOpenFile: on Windows, a file another handle holds open is
// not replaced: the error wraps ErrInUse, the old content stays and the
// temporary file is gone. Elsewhere the replace succeeds and the open
// handle keeps reading the old content.
func TestReplaceOpenFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.tar")
	if err := Write(p, []byte("old")); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = Write(p, []byte("new"))
	if runtime.GOOS == "windows" {
		if !errors.Is(err, ErrInUse) {
			t.Fatalf("Write over an open file = %v, want ErrInUse", err)
		}
		f.Close()
		if b, _ := os.ReadFile(p); string(b) != "old" {
			t.Errorf("content %q after the refused replace, want old", b)
		}
	} else {
		if err != nil {
			t.Fatalf("Write over an open file: %v", err)
		}
		b := make([]byte, 3)
		if _, err := f.Read(b); err != nil || string(b) != "old" {
			t.Errorf("the open handle reads %q, %v; want old", b, err)
		}
	}
	assertAlone(t, p)
}

// assertAlone fails the test unless p is the only file in its directory.
func assertAlone(t *testing.T, p string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(p))
	if err != nil || len(entries) != 1 {
		t.Errorf("directory holds %v, %v; want only %s", entries, err, filepath.Base(p))
	}
}

// TestRemoveStale: temporaries of ferry's naming older than StaleAge go,
// fresh ones (a concurrent writer's) and other files stay.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-2 * StaleAge)
	files := map[string]bool{ // name -> removed
		".out.tar.tmp-123456":         true,
		".tmp-0123456789ab-42":        true,
		"index.json.tmp-0123456789ab": true,
		".other.tar.tmp-99":           false, // another prefix
		"notes.tmp-x":                 false, // not ferry's naming
		"fresh":                       false,
	}
	for name := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("debris"), 0o644); err != nil {
			t.Fatal(err)
		}
		if name != "fresh" {
			os.Chtimes(filepath.Join(dir, name), old, old)
		}
	}
	f, err := CreateTemp(dir, ".out.tar.tmp-*") // a live writer's: fresh
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	RemoveStale(dir, ".other.tar.tmp-nothing")
	RemoveStale(dir, ".out.tar.tmp-")
	RemoveStale(dir, ".tmp-")
	RemoveStale(dir, "index.json")
	for name, removed := range files {
		if _, err := os.Stat(filepath.Join(dir, name)); os.IsNotExist(err) != removed {
			t.Errorf("%s: removed %v, want %v", name, os.IsNotExist(err), removed)
		}
	}
	if _, err := os.Stat(f.Name()); err != nil {
		t.Errorf("a fresh temporary file was removed: %v", err)
	}
}
