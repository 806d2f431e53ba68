// Package atomicfile replaces files through a temporary name and a rename,
// the way ferry writes OCI layouts, archives and dir: images, with the
// errors Windows gives made clear.
//
// A rename over an existing file replaces it on every operating system
// ferry supports. On Windows it fails while another handle has the file
// open (another program reading an archive, or this very copy reading the
// archive it is told to overwrite); Replace then leaves the old file as it
// was, removes the temporary one and returns an error wrapping ErrInUse.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
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

// Write writes b to a temporary file beside p (named p.tmp-RANDOM) and
// replaces p with it (Replace).
func Write(p string, b []byte) error {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := p + ".tmp-" + hex.EncodeToString(rnd[:])
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", p, err)
	}
	return Replace(tmp, p)
}
