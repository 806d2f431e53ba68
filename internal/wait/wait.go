// Package wait holds what the retry loops of the registry client, the
// foreign fetcher and the copy engine share: a context-aware sleep, and
// the reading of a server's Retry-After.
package wait

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
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

// MaxRetryAfter caps the wait a server's Retry-After asks for.
const MaxRetryAfter = 60 * time.Second

// RetryAfter reads a Retry-After header, in seconds or an HTTP date,
// relative to now: 0 when it is absent, invalid or past, at most
// MaxRetryAfter.
func RetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if n, err := strconv.ParseInt(h, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return min(t.Sub(now), MaxRetryAfter)
	}
	return 0
}

// RetryAfterError is a failure whose server asked, with Retry-After, not
// to be retried sooner than After (already read by RetryAfter, so capped).
type RetryAfterError struct {
	Err   error
	After time.Duration
}

// Error implements error: the failure's own message.
func (e *RetryAfterError) Error() string { return e.Err.Error() }

// Unwrap returns the failure.
func (e *RetryAfterError) Unwrap() error { return e.Err }

// NotBefore returns d, or the wait a RetryAfterError in err's chain asks
// for when that is longer: every retry loop honours the server's
// Retry-After, whichever layer read it.
func NotBefore(err error, d time.Duration) time.Duration {
	var ra *RetryAfterError
	if errors.As(err, &ra) && ra.After > d {
		return ra.After
	}
	return d
}
