package rootlock

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestAcquireExcludesAndReleases(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "root")
	l, err := Acquire(dir, "ferry serve")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(dir, "ferry storage gc")
	var he *HeldError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &he) {
		t.Fatalf("second Acquire: %v, want a HeldError", err)
	}
	if !strings.HasPrefix(he.Holder, "ferry serve (pid ") || !strings.Contains(err.Error(), "ferry serve") {
		t.Errorf("holder %q, message %q", he.Holder, err)
	}
	if err := Held(dir); !errors.Is(err, ErrLocked) {
		t.Errorf("Held while held: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := Held(dir); err != nil {
		t.Errorf("Held after Release: %v", err)
	}
	if err := Held(t.TempDir()); err != nil {
		t.Errorf("Held without a lock file: %v", err)
	}
	l2, err := Acquire(dir, "ferry storage gc")
	if err != nil {
		t.Fatalf("after Release: %v", err)
	}
	if err := l2.Release(); err != nil {
		t.Fatal(err)
	}
	var nilLock *Lock
	if err := nilLock.Release(); err != nil {
		t.Error(err)
	}
}
