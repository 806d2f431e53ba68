package server

import (
	"fmt"

	"github.com/distribution/distribution/v3/configuration"

	"github.com/ferry-dev/ferry/internal/rootlock"
)

// defaultFilesystemRoot is distribution's filesystem driver's root when
// the configuration names none.
const defaultFilesystemRoot = "/var/lib/registry"

// LockHolder is how a running server describes itself in its root's lock,
// and so in the error `ferry storage gc` gives while it runs.
const LockHolder = "ferry serve"

// lockRoot takes the storage root's lock (internal/rootlock) when cfg
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
	l, err := rootlock.Acquire(dir, LockHolder)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	return l, nil
}
