//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly || windows)

package rootlock

import (
	"errors"
	"os"
)

var errUnsupported = errors.New("storage-root locks are not supported on this operating system")

func lockFile(*os.File) error   { return errUnsupported }
func unlockFile(*os.File) error { return nil }
