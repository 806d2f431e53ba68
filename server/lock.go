package server

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/distribution/distribution/v3/configuration"

	"github.com/ferry-dev/ferry/internal/regstorage"
	"github.com/ferry-dev/ferry/internal/regstorage/rootlock"
)

// defaultFilesystemRoot is distribution's filesystem driver's root when
// the configuration names none.
const defaultFilesystemRoot = "/var/lib/registry"

// LockHolder is how a running server describes itself in its root's lock,
// and so in the error `ferry storage gc` gives while it runs.
const LockHolder = "ferry serve"

// lockRoot takes the storage root's lock (internal/regstorage/rootlock) when cfg
// stores on the local filesystem, so that offline operations on the root
// (storage gc, storage import) refuse to run under a live registry. It
// returns nil for other storage drivers.
func lockRoot(cfg *configuration.Configuration) (*rootlock.Lock, error) {
	if cfg.Storage.Type() != "filesystem" {
		return nil, nil
	}
	dir := defaultFilesystemRoot
	if s, ok := cfg.Storage.Parameters()["rootdirectory"].(string); ok && s != "" {
		dir = s
	}
	if err := checkRoot(dir); err != nil {
		return nil, err
	}
	l, err := rootlock.Acquire(dir, LockHolder)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	return l, nil
}

// ErrNotRoot means a directory holds other things than a registry
// storage root: serving it would write docker/registry/v2 among them. It
// is regstorage.ErrNotRoot, the error store/regroot gives too.
var ErrNotRoot = regstorage.ErrNotRoot

// notRootError is checkRoot's refusal, in words for ferry serve's --root,
// matched with errors.Is as ErrNotRoot.
type notRootError struct {
	dir   string // the root
	other string // one thing it holds
}

func (e *notRootError) Error() string {
	return fmt.Sprintf("server: root %s: neither empty nor a registry storage root (it holds %s but no %s); point --root at an empty or new directory, or at a registry root", e.dir, e.other, regstorage.DataDir)
}

// Unwrap returns ErrNotRoot.
func (e *notRootError) Unwrap() error { return ErrNotRoot }

// checkRoot accepts a directory that does not exist yet, an empty one (a
// lock file aside), or a docker/registry root (docker/registry/v2 inside).
func checkRoot(dir string) error {
	if fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(regstorage.DataDir))); err == nil && fi.IsDir() {
		return nil
	}
	other, err := rootlock.Stranger(dir)
	if err != nil {
		return fmt.Errorf("server: root %s: %w", dir, err)
	}
	if other != "" {
		return &notRootError{dir: dir, other: other}
	}
	return nil
}
