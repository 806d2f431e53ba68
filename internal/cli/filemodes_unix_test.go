//go:build unix

package cli

import (
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"
)

// TestWrittenFileModes: archives, layouts (blobs, index.json, oci-layout)
// and dir: images are created 0666 less the umask, as os.Create and
// skopeo create them, so that other users can read air-gap media (issue
// 18 item 11). Under umask 002 that is 0664; os.CreateTemp made 0600.
func TestWrittenFileModes(t *testing.T) {
	old := syscall.Umask(0o002)
	defer syscall.Umask(old)
	refs := twoImages(t)
	dir := t.TempDir()
	for _, dst := range []string{
		"oci-archive:" + filepath.Join(dir, "a.tar"),
		"docker-archive:" + filepath.Join(dir, "d.tar"),
		"oci:" + filepath.Join(dir, "layout") + ":v1",
		"dir:" + filepath.Join(dir, "dir"),
	} {
		if _, stderr, code := run(t, "copy", refs[0], dst); code != 0 {
			t.Fatalf("copy to %s: exit %d: %s", dst, code, stderr)
		}
	}
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		n++
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode().Perm() != 0o664 {
			t.Errorf("%s: mode %o, want 664 (0666 less umask 002)", p, fi.Mode().Perm())
		}
		return nil
	})
	if err != nil || n < 10 {
		t.Fatalf("walked %d files: %v", n, err)
	}
}
