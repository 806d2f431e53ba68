// Package atomicfile replaces files through a temporary name and a rename,
// the way ferry writes OCI layouts, archives and dir: images, with the
// errors Windows gives made clear.
//
// Files are created with mode 0666 less the umask, as os.Create, docker
// and skopeo create them (0644 under the usual umask 022): layouts and
// archives on air-gap media are read by other users. Temporary files are
// named ".NAME.tmp-RANDOM" (and ".tmp-DIGEST-RANDOM" for layout blobs);
// RemoveStale removes the ones a killed ferry left behind.
//
// A rename over an existing file replaces it on every operating system
// ferry supports. On Windows it fails while another handle has the file
// open (another program reading an archive, or this very copy reading the
// archive it is told to overwrite); Replace then leaves the old file as it
// was, removes the temporary one and returns an error wrapping ErrInUse.
package atomicfile

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ErrInUse means a file could not be replaced because another handle has
// it open (Windows only).
var ErrInUse = errors.New("the file is open in another program (Windows cannot replace an open file); close it and try again")

// Replace renames tmp to final, replacing final if it exists. On failure
// tmp is removed and final is left untouched; an error caused by final
// being open elsewhere wraps ErrInUse.
func Replace(tmp, final string) error {
	err := os.Rename(tmp, final)
	if err == nil {
		return nil
	}
	_ = os.Remove(tmp)
	if InUse(err) {
		return fmt.Errorf("replace %s: %w (%w)", final, ErrInUse, err)
	}
	return fmt.Errorf("replace %s: %w", final, err)
}

// Write writes b to a temporary file beside p (named .BASE.tmp-RANDOM)
// and replaces p with it (Replace).
func Write(p string, b []byte) error {
	f, err := CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", p, err)
	}
	return Replace(f.Name(), p)
}

// CreateTemp creates a new file in dir, opened for reading and writing,
// named by pattern with its last '*' replaced by a random number, as
// os.CreateTemp does, but with mode 0666 less the umask rather than 0600:
// the file is renamed into place as a layout blob or archive that other
// users read.
func CreateTemp(dir, pattern string) (*os.File, error) {
	prefix, suffix := pattern, ""
	if i := strings.LastIndexByte(pattern, '*'); i >= 0 {
		prefix, suffix = pattern[:i], pattern[i+1:]
	}
	for try := 0; ; try++ {
		name := filepath.Join(dir, prefix+strconv.FormatUint(uint64(rand.Uint32()), 10)+suffix)
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, os.ErrExist) && try < 10000 {
			continue
		}
		return f, err
	}
}

// StaleAge is how long a temporary file of ferry's naming must have gone
// unmodified before RemoveStale takes it for debris. A writer moves bytes
// into its temporary file at least every stall timeout (a minute by
// default) or gives up and removes it, so a file an hour old belongs to
// no live writer, even one sharing the directory from another process.
const StaleAge = time.Hour

// tempName matches the names of ferry's temporary files: .NAME.tmp-N
// (archives, Write), .tmp-HEX-N (layout blobs) and NAME.tmp-HEX12 (Write
// before it took the leading dot).
var tempName = regexp.MustCompile(`^(\..+\.tmp-[0-9]+|\.tmp-[0-9a-f]+-[0-9]+|.+\.tmp-[0-9a-f]{12})$`)

// IsTemp reports whether the file name (without directory) is one of
// ferry's temporary names.
func IsTemp(name string) bool { return tempName.MatchString(name) }

// RemoveStale removes the temporary files of ferry's naming (see IsTemp)
// directly in dir whose names start with prefix ("" for all) and that were
// last modified more than StaleAge ago: the debris of a killed or crashed
// write. It returns how many it removed and their size. It is best
// effort: a file it cannot stat or remove is left alone, and a missing dir
// is not an error.
func RemoveStale(dir, prefix string) (n int, size int64) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0
	}
	cutoff := time.Now().Add(-StaleAge)
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), prefix) || !IsTemp(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil || !fi.ModTime().Before(cutoff) {
			continue
		}
		if os.Remove(filepath.Join(dir, e.Name())) == nil {
			n++
			size += fi.Size()
		}
	}
	return n, size
}
