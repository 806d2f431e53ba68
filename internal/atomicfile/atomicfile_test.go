package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
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
