package server

import "testing"

// SetReferrersPageSize sets the referrers API's page size for the test.
func SetReferrersPageSize(t *testing.T, n int) {
	old := referrersPageSize
	referrersPageSize = n
	t.Cleanup(func() { referrersPageSize = old })
}
