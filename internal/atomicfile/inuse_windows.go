package atomicfile

import (
	"errors"

	"golang.org/x/sys/windows"
)

// InUse says whether err is Windows refusing to rename, replace or remove
// a file because another handle has it open.
func InUse(err error) bool {
	return errors.Is(err, windows.ERROR_SHARING_VIOLATION) ||
		errors.Is(err, windows.ERROR_ACCESS_DENIED) ||
		errors.Is(err, windows.ERROR_LOCK_VIOLATION)
}
