package ocilayout_test

import (
	"testing"

	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/ocilayout"
	"github.com/ferry-dev/ferry/store/storetest"
)

// TestContract runs the store contract (package storetest) on a layout.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dir string) (store.Target, storetest.Reopen) {
		return ocilayout.Open(dir, "v1", ""), func(t *testing.T) (store.Source, error) {
			return ocilayout.Open(dir, "v1", ""), nil
		}
	}, storetest.Options{})
}
