// Package rootlock guards a registry storage root against two ferry
// processes that must not share it: a running `ferry serve` and an offline
// `ferry storage gc` or `storage import`. It is an operating-system lock
// (flock on Unix, LockFileEx on Windows) on a file inside the root, so it
// is released when the process holding it exits, even by a crash: a lock
// file left behind is not a stale lock.
package rootlock

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// FileName is the lock file's name inside the root. distribution ignores
// it: its storage lives under docker/registry/v2.
const FileName = ".ferry.lock"

// ErrLocked means another process (or another Lock in this process) holds
// the root.
var ErrLocked = errors.New("storage root is in use")

// maxHolder bounds how much of the lock file is read for a message.
const maxHolder = 512

// HeldError says who holds a root. It wraps ErrLocked.
type HeldError struct {
	// Root is the directory that is locked.
	Root string
	// Holder is what the holder wrote when it took the lock, e.g.
	// "ferry serve (pid 1234)"; empty when it could not be read.
	Holder string
}

func (e *HeldError) Error() string {
	if e.Holder == "" {
		return fmt.Sprintf("%s: %v by another ferry process", e.Root, ErrLocked)
	}
	return fmt.Sprintf("%s: %s holds this storage root", e.Root, e.Holder)
}

// Unwrap returns ErrLocked.
func (e *HeldError) Unwrap() error { return ErrLocked }

// Lock is a held lock on a root.
type Lock struct {
	f *os.File
}

// Acquire takes the lock on the root dir without waiting, creating dir and
// the lock file when missing. holder describes the taker for others'
// messages ("ferry serve"); the process id is added. When someone else
// holds the root the error is a *HeldError wrapping ErrLocked.
func Acquire(dir, holder string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	p := filepath.Join(dir, FileName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, ErrLocked) {
			return nil, &HeldError{Root: dir, Holder: readHolder(p)}
		}
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	// The lock covers a byte range past what is written here, so others
	// can read who holds it (Windows locks are mandatory).
	text := fmt.Sprintf("%s (pid %d)\n", holder, os.Getpid())
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(text), 0)
	}
	return &Lock{f: f}, nil
}

// Held reports whether someone holds the lock on dir, creating nothing: it
// returns a *HeldError when the lock file exists and is locked, and nil
// otherwise (no file, free, or unreadable).
func Held(dir string) error {
	p := filepath.Join(dir, FileName)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	if err := lockFile(f); err != nil {
		if errors.Is(err, ErrLocked) {
			return &HeldError{Root: dir, Holder: readHolder(p)}
		}
		return nil
	}
	_ = unlockFile(f)
	return nil
}

func readHolder(p string) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, maxHolder))
	return strings.TrimSpace(string(b))
}

// Release gives the lock up. The file stays; it is not a lock by itself.
// Release on a nil Lock does nothing.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := unlockFile(l.f)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	if err != nil {
		return fmt.Errorf("unlock: %w", err)
	}
	return nil
}

// Stranger returns the name of an entry of dir other than the lock file,
// or "" when dir does not exist or holds nothing else: a directory where a
// new storage root may be started.
func Stranger(dir string) (string, error) {
	// Stat first: reading a file as a directory fails as "not found" on
	// Windows, which would pass for a directory yet to be made.
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%s: not a directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if e.Name() != FileName {
			return e.Name(), nil
		}
	}
	return "", nil
}
