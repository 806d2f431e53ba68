package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/internal/regstorage/replicas"
	"github.com/ferry-dev/ferry/opener"
	"github.com/ferry-dev/ferry/server"
)

// errReplicasRunning means gc was refused on shared storage.
var errReplicasRunning = errors.New("refusing to collect garbage")

// openGCRoot opens the root storage gc works on: the local directory root
// (locked), or the storage configFile names. Shared storage is opened only
// when no running replica accepts writes and either stopped is set or
// every running replica is read-only; see newStorageGCCmd.
func (g *globals) openGCRoot(cmd *cobra.Command, root, configFile string, stopped bool) (*opener.Root, error) {
	ctx := cmd.Context()
	if configFile != "" {
		dir, d, desc, err := server.ConfigStorage(ctx, configFile)
		if err != nil {
			return nil, err
		}
		if dir == "" {
			live, err := replicas.Live(ctx, d)
			if err != nil {
				return nil, err
			}
			if err := gcAllowed(desc, live, stopped); err != nil {
				return nil, &ExitError{Code: 1, Err: err}
			}
			if len(live) > 0 {
				fmt.Fprintf(g.stderr, "ferry: %d replica(s) on %s run read-only\n", len(live), desc)
			}
			return opener.OpenRootDriver(ctx, desc, d)
		}
		root = dir
	}
	return opener.OpenRoot(ctx, root, "ferry storage gc")
}

// gcAllowed decides whether gc may run on shared storage desc, given the
// replicas running on it and whether the user says all are stopped.
func gcAllowed(desc string, live []replicas.Marker, stopped bool) error {
	var writers []string
	for _, m := range live {
		if !m.ReadOnly {
			writers = append(writers, m.String())
		}
	}
	if len(writers) > 0 {
		return fmt.Errorf("%w on %s: %d replica(s) accept writes: %s. Collecting garbage under a registry that accepts pushes deletes the blobs of uploads in flight and of images pushed while it marks. Stop them, or restart them all read-only (storage.maintenance.readonly.enabled: true), then rerun; a crashed replica stops counting %s after its marker's last write",
			errReplicasRunning, desc, len(writers), strings.Join(writers, "; "), replicas.StaleAfter)
	}
	if len(live) == 0 && !stopped {
		return fmt.Errorf("%w on %s: shared storage may be served by registries on other hosts, which no lock here can see, and collecting garbage under one that accepts pushes loses data. Stop every registry using it, then rerun with --i-stopped-all-replicas; or run the ferry serve replicas read-only (storage.maintenance.readonly.enabled: true), which they announce through the storage, and gc runs without the flag",
			errReplicasRunning, desc)
	}
	return nil
}
