// Package wait holds the one context-aware sleep the retry loops of the
// registry client, the foreign fetcher and the copy engine share.
package wait

import (
	"context"
	"time"
)

// Sleep waits for d, or until ctx is done; then it returns the context's
// cause (its error when no cause was given).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
