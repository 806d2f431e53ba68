package server

import "testing"

// SetReferrersPageSize sets the referrers API's page size for the test.
func SetReferrersPageSize(t *testing.T, n int) {
	old := referrersPageSize
	referrersPageSize = n
	t.Cleanup(func() { referrersPageSize = old })
}

// SetPurgeStarts makes f run as each upload purge begins, for the test.
func SetPurgeStarts(t *testing.T, f func()) {
	purgeStarts = f
	t.Cleanup(func() { purgeStarts = nil })
}

// KeepProxyStall restores, when the test ends, the stall timeout mirrors
// give net/http's default transport (a mirror the test starts sets its
// own).
func KeepProxyStall(t *testing.T) {
	old := proxyStall.Load()
	t.Cleanup(func() { proxyStall.Store(old) })
}
