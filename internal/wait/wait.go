// Package wait holds what the retry loops of the registry client, the
// foreign fetcher and the copy engine share: one backoff, a context-aware
// sleep, and the reading of a server's Retry-After.
package wait

import (
	"context"
	"errors"
	"math/rand/v2"
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
// for (at most MaxRetryAfter) when that is longer: every retry loop
// honours the server's Retry-After, whichever layer read it.
func NotBefore(err error, d time.Duration) time.Duration {
	var ra *RetryAfterError
	if errors.As(err, &ra) && ra.After > d {
		return max(d, min(ra.After, MaxRetryAfter))
	}
	return d
}

// Backoff is the wait between the attempts of a retry loop, the one
// formula the registry client, the foreign fetcher and the copy engine
// share: Fixed when it is set; otherwise exponential, Base before the
// first retry, doubling up to Max, each wait drawn at random between half
// and all of that (jitter, so that parallel transfers failing together do
// not retry together). A longer wait asked for by a server's Retry-After
// (a RetryAfterError in the last failure's chain) takes precedence, up to
// MaxRetryAfter.
type Backoff struct {
	// Base is the exponential backoff's first wait, Max (at least Base)
	// its largest; each is the upper end of the jittered range.
	Base, Max time.Duration
	// Fixed, when positive, is every wait instead: no growth, no jitter.
	Fixed time.Duration
}

// Delay returns the wait before the retry-th retry (1 for the first),
// after the attempt that failed with last (which may be nil).
func (b Backoff) Delay(retry int, last error) time.Duration {
	d := b.Fixed
	if d <= 0 {
		d = b.Base
		for i := 1; i < retry && d < b.Max; i++ {
			d *= 2
		}
		if d = min(d, b.Max); d > 0 {
			d = d/2 + rand.N(d/2+1)
		}
	}
	return NotBefore(last, d)
}

// Wait sleeps for Delay(retry, last), or until ctx is done (see Sleep).
func (b Backoff) Wait(ctx context.Context, retry int, last error) error {
	return Sleep(ctx, b.Delay(retry, last))
}
