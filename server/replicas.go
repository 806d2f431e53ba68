package server

// This file makes the embedded registry one of several replicas on shared
// storage: at start each announces itself through the storage
// (internal/regstorage/replicas), which catches a store that does not
// return what was written and a replica with another http.secret.

import (
	"context"
	"errors"
	"fmt"

	"github.com/distribution/distribution/v3/configuration"

	"github.com/ferry-dev/ferry/internal/regstorage/replicas"
)

// sharedStorage reports whether cfg stores through a driver several
// registry processes may share: any but the local filesystem (which
// internal/regstorage/rootlock keeps to one process) and memory.
func sharedStorage(cfg *configuration.Configuration) bool {
	switch cfg.Storage.Type() {
	case "filesystem", "inmemory", "":
		return false
	}
	return true
}

// readOnly reports whether cfg runs distribution's read-only mode
// (storage.maintenance.readonly.enabled).
func readOnly(cfg *configuration.Configuration) bool {
	m, ok := cfg.Storage["maintenance"]
	if !ok {
		return false
	}
	ro, ok := m["readonly"].(map[any]any)
	if !ok {
		return false
	}
	on, _ := ro["enabled"].(bool)
	return on
}

// announce runs the replica self-test on shared storage: it writes this
// replica's marker through the storage driver distribution uses, reads it
// back, and fails when a running replica has another http.secret. It
// returns nil for storage no other process can share.
func announce(ctx context.Context, cfg *configuration.Configuration, sink *namespaceSink) (*replicas.Presence, error) {
	if !sharedStorage(cfg) || cfg.Proxy.RemoteURL != "" {
		return nil, nil
	}
	if sink.driver == nil {
		return nil, errors.New("server: distribution did not hand over its storage driver")
	}
	p, err := replicas.Announce(ctx, sink.driver, cfg.HTTP.Secret, readOnly(cfg))
	if err != nil {
		return nil, fmt.Errorf("server: startup self-test on %s storage: %w", cfg.Storage.Type(), err)
	}
	return p, nil
}
