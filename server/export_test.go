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
