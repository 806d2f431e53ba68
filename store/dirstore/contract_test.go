package dirstore_test

import (
	"testing"

	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/dirstore"
	"github.com/ferry-dev/ferry/store/storetest"
)

// TestContract runs the store contract (package storetest) on a dir:
// directory.
func TestContract(t *testing.T) {
	storetest.Run(t, storetest.At("image",
		func(p string) (store.Target, error) { return dirstore.Create(p) },
		func(p string) (store.Source, error) { return dirstore.Open(p), nil },
	), storetest.Options{})
}
