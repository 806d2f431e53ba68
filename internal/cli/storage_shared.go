package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/opener"
)

// openGCRoot opens the root storage gc works on (opener.OpenGCRoot) and
// words a refusal of shared storage with this command's flags.
func (g *globals) openGCRoot(cmd *cobra.Command, root, configFile string, stopped bool) (*opener.Root, error) {
	r, err := opener.OpenGCRoot(cmd.Context(), root, configFile, "ferry storage gc", stopped)
	var refusal *opener.GCRefusal
	if errors.As(err, &refusal) {
		return nil, &ExitError{Code: 1, Err: gcRefusal(refusal)}
	}
	if err != nil {
		return nil, err
	}
	if r.ReadOnlyReplicas > 0 {
		fmt.Fprintf(g.stderr, "ferry: %d replica(s) on %s run read-only\n", r.ReadOnlyReplicas, r.Desc)
	}
	return r, nil
}

// gcRefusal words why gc refused shared storage and what to do.
func gcRefusal(r *opener.GCRefusal) error {
	if len(r.Writers) > 0 {
		return fmt.Errorf("%w on %s: %d replica(s) accept writes: %s. Collecting garbage under a registry that accepts pushes deletes the blobs of uploads in flight and of images pushed while it marks. Stop them, or restart them all read-only (storage.maintenance.readonly.enabled: true), then rerun; a crashed replica stops counting %s after its marker's last write",
			opener.ErrReplicasRunning, r.Desc, len(r.Writers), strings.Join(r.Writers, "; "), r.StaleAfter)
	}
	return fmt.Errorf("%w on %s: shared storage may be served by registries on other hosts, which no lock here can see, and collecting garbage under one that accepts pushes loses data. Stop every registry using it, then rerun with --i-stopped-all-replicas; or run the ferry serve replicas read-only (storage.maintenance.readonly.enabled: true), which they announce through the storage, and gc runs without the flag",
		opener.ErrReplicasRunning, r.Desc)
}
