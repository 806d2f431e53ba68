// Package fsdriver makes distribution's filesystem storage driver work on
// Windows, for ferry's registry storage roots (store/regroot) and for
// `ferry serve` (server).
//
// distribution v3.1's filesystem driver writes small files (startedat,
// link, hashstates) with PutContent, which renames a temporary file into
// place while its own handle on that file is still open. POSIX allows
// that; Windows refuses it with a sharing violation, because Go opens
// files without FILE_SHARE_DELETE, so every push to a filesystem root
// fails there. Wrap replaces PutContent with one that closes the file
// before renaming it, and retries the rename briefly while a concurrent
// reader still holds the destination open.
package fsdriver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	storagemiddleware "github.com/distribution/distribution/v3/registry/storage/driver/middleware"

	"github.com/ferry-dev/ferry/internal/atomicfile"
	"github.com/ferry-dev/ferry/internal/wait"
)

// MiddlewareName is the storage middleware a distribution configuration
// names (middleware: storage: - name: ...) to get Wrap applied to its
// driver; it is registered when this package is imported.
const MiddlewareName = "ferry-filesystem-windows"

func init() {
	// Register fails only on a duplicate name, which this package owns.
	_ = storagemiddleware.Register(MiddlewareName, func(_ context.Context, d storagedriver.StorageDriver, _ map[string]any) (storagedriver.StorageDriver, error) {
		return Wrap(d), nil
	})
}

// New returns distribution's filesystem driver rooted at dir, wrapped by
// Wrap.
func New(dir string) (storagedriver.StorageDriver, error) {
	d, err := filesystem.FromParameters(map[string]any{"rootdirectory": dir})
	if err != nil {
		return nil, fmt.Errorf("filesystem storage at %s: %w", dir, err)
	}
	return Wrap(d), nil
}

// Wrap returns d with PutContent, List and Walk that work on Windows. On other
// operating systems it returns d itself: there the driver's own
// PutContent is right and also syncs the directory.
func Wrap(d storagedriver.StorageDriver) storagedriver.StorageDriver {
	if runtime.GOOS != "windows" {
		return d
	}
	return windowsDriver{d}
}

// windowsDriver is a storage driver whose PutContent closes the temporary
// file before renaming it into place and whose keys use slashes.
type windowsDriver struct {
	storagedriver.StorageDriver
}

// PutContent implements storagedriver.StorageDriver: contents go to a
// temporary file beside p, which is flushed, closed and then renamed over
// p, so a reader sees the old contents or the new, never a part.
func (d windowsDriver) PutContent(ctx context.Context, p string, contents []byte) error {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := p + "." + hex.EncodeToString(rnd[:]) + ".tmp"
	w, err := d.Writer(ctx, tmp, false)
	if err != nil {
		return err
	}
	if _, err := w.Write(contents); err != nil {
		return errors.Join(err, w.Cancel(ctx))
	}
	if err := w.Commit(ctx); err != nil {
		return errors.Join(err, w.Cancel(ctx))
	}
	if err := w.Close(); err != nil {
		return errors.Join(err, d.Delete(ctx, tmp))
	}
	if err := d.moveRetrying(ctx, tmp, p); err != nil {
		return errors.Join(err, d.Delete(ctx, tmp))
	}
	return nil
}

// Windows refuses to replace a file another handle has open (a registry
// request reading the same link file, a scanner): such a rename is tried
// again a few times over about a second before failing, with the retry
// loops' one backoff (10 ms doubling, jittered).
const moveTries = 8

var moveBackoff = wait.Backoff{Base: 10 * time.Millisecond, Max: 640 * time.Millisecond}

func (d windowsDriver) moveRetrying(ctx context.Context, from, to string) error {
	for i := 1; ; i++ {
		err := d.Move(ctx, from, to)
		if err == nil || i == moveTries || !inUse(err) {
			return err
		}
		if werr := moveBackoff.Wait(ctx, i, nil); werr != nil {
			return errors.Join(err, werr)
		}
	}
}

// List implements storagedriver.StorageDriver with keys in the driver's
// form, slash-separated, whatever the operating system's separator.
func (d windowsDriver) List(ctx context.Context, p string) ([]string, error) {
	keys, err := d.StorageDriver.List(ctx, p)
	for i, k := range keys {
		keys[i] = filepath.ToSlash(k)
	}
	return keys, err
}

// Walk implements storagedriver.StorageDriver over List and Stat of d
// itself (the wrapped driver's Walk would use its own List).
func (d windowsDriver) Walk(ctx context.Context, p string, f storagedriver.WalkFn, options ...func(*storagedriver.WalkOptions)) error {
	return storagedriver.WalkFallback(ctx, d, p, f, options...)
}

// inUse says whether err, as the driver returns it, is Windows refusing
// to replace a file another handle has open. distribution's
// storagedriver.Error does not unwrap, so its Detail is looked into.
func inUse(err error) bool {
	var se storagedriver.Error
	if errors.As(err, &se) {
		err = se.Detail
	}
	return atomicfile.InUse(err)
}
