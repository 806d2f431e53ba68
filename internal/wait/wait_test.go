package wait

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                     0,
		"1":                    time.Second,
		" 7 ":                  7 * time.Second,
		"0":                    0,
		"-3":                   0,
		"soon":                 0,
		"99999999999999999999": 0, // not an int64: not a number of seconds
		"3600":                 MaxRetryAfter,
		now.Add(5 * time.Second).Format(http.TimeFormat):  5 * time.Second,
		now.Add(-5 * time.Second).Format(http.TimeFormat): 0,
		now.Add(time.Hour).Format(http.TimeFormat):        MaxRetryAfter,
	} {
		if got := RetryAfter(in, now); got != want {
			t.Errorf("RetryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestNotBefore(t *testing.T) {
	ra := &RetryAfterError{Err: errors.New("503"), After: 2 * time.Second}
	for _, c := range []struct {
		err  error
		d    time.Duration
		want time.Duration
	}{
		{nil, time.Second, time.Second},
		{errors.New("plain"), time.Second, time.Second},
		{fmt.Errorf("blob x: %w", ra), time.Second, 2 * time.Second},
		{ra, 5 * time.Second, 5 * time.Second},
	} {
		if got := NotBefore(c.err, c.d); got != c.want {
			t.Errorf("NotBefore(%v, %s) = %s, want %s", c.err, c.d, got, c.want)
		}
	}
	if ra.Error() != "503" || !errors.Is(fmt.Errorf("x: %w", ra), ra.Err) {
		t.Error("RetryAfterError does not read or unwrap as its failure")
	}
}

func TestBackoff(t *testing.T) {
	b := Backoff{Base: 100 * time.Millisecond, Max: time.Second}
	for retry, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 100: time.Second} {
		lo, hi := want, time.Duration(0)
		for range 200 {
			d := b.Delay(retry, nil)
			if d < want/2 || d > want {
				t.Fatalf("Delay(%d) = %s, want %s/2..%s", retry, d, want, want)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		if hi-lo < want/10 {
			t.Errorf("Delay(%d) ranged over %s..%s only: no jitter", retry, lo, hi)
		}
	}

	fixed := Backoff{Base: 100 * time.Millisecond, Max: time.Second, Fixed: 10 * time.Millisecond}
	for _, retry := range []int{1, 2, 10} {
		if d := fixed.Delay(retry, errors.New("503")); d != 10*time.Millisecond {
			t.Errorf("fixed Delay(%d) = %s", retry, d)
		}
	}

	// A longer Retry-After wins, capped; a shorter one does not shorten the wait.
	ra := &RetryAfterError{Err: errors.New("429"), After: 3 * time.Second}
	for _, bb := range []Backoff{b, fixed} {
		if d := bb.Delay(1, fmt.Errorf("x: %w", ra)); d != 3*time.Second {
			t.Errorf("%+v: Retry-After 3s: %s", bb, d)
		}
	}
	if d := (Backoff{Fixed: 5 * time.Second}).Delay(1, ra); d != 5*time.Second {
		t.Errorf("Retry-After shorter than the fixed delay: %s", d)
	}
	if d := b.Delay(1, &RetryAfterError{Err: ra.Err, After: time.Hour}); d != MaxRetryAfter {
		t.Errorf("Retry-After capped at %s", d)
	}
}

func TestBackoffWaitCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := (Backoff{Fixed: time.Minute}).Wait(ctx, 1, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait after cancel: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Error("Wait did not return on cancel")
	}
}
