package ocilayout_test

import (
	"testing"

	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/ocilayout"
	"github.com/ferry-dev/ferry/store/storetest"
)

// TestContract runs the store contract (package storetest) on a layout.
func TestContract(t *testing.T) {
	storetest.Run(t, storetest.At("layout",
		func(p string) (store.Target, error) { return ocilayout.Open(p, "v1", ""), nil },
		func(p string) (store.Source, error) { return ocilayout.Open(p, "v1", ""), nil },
	), storetest.Options{})
}
