package ociarchive

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// FuzzScan feeds arbitrary bytes to the archive scanner: it must refuse
// or index them, never panic, and every name it serves must be safe.
func FuzzScan(f *testing.F) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "index.json", Typeflag: tar.TypeReg, Size: 2, Mode: 0o644})
	tw.Write([]byte("{}"))
	tw.WriteHeader(&tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "index.json"})
	tw.WriteHeader(&tar.Header{Name: "loop", Typeflag: tar.TypeSymlink, Linkname: "loop"})
	tw.Close()
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "a.tar")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		toc, err := Scan(file)
		if err != nil {
			return
		}
		for name := range toc.entries {
			if _, err := CheckEntryName(name); err != nil {
				t.Fatalf("indexed unsafe name %q", name)
			}
		}
		for name := range toc.links {
			if rc, err := toc.Open(name); err == nil {
				io.Copy(io.Discard, rc)
				rc.Close()
			} else if !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("open %q: %v", name, err)
			}
		}
	})
}
