//go:build unix

package atomicfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestModeFollowsUmask: files are 0666 less the umask, not os.CreateTemp's
// 0600 nor a fixed 0644.
func TestModeFollowsUmask(t *testing.T) {
	old := syscall.Umask(0o002)
	defer syscall.Umask(old)
	dir := t.TempDir()
	p := filepath.Join(dir, "index.json")
	if err := Write(p, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	f, err := CreateTemp(dir, ".blob.tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, name := range []string{p, f.Name()} {
		if fi, err := os.Stat(name); err != nil || fi.Mode().Perm() != 0o664 {
			t.Errorf("%s: %v, %v; want mode 664", name, fi.Mode(), err)
		}
	}
}
