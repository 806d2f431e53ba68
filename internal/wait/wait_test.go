package wait

import (
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
