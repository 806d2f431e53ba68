package ociarchive_test

import (
	"testing"

	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/ociarchive"
	"github.com/ferry-dev/ferry/store/storetest"
)

// TestContract runs the store contract (package storetest) on an
// oci-archive, read back once it is closed.
func TestContract(t *testing.T) {
	storetest.Run(t, storetest.At("image.tar",
		func(p string) (store.Target, error) { return ociarchive.Create(p, "v1") },
		func(p string) (store.Source, error) { return ociarchive.OpenSource(p, "v1") },
	), storetest.Options{})
}
