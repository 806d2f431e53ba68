//go:build !windows

package atomicfile

// InUse is false off Windows, where an open file can always be renamed,
// replaced or removed.
func InUse(error) bool { return false }
