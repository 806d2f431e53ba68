package dockerarchive_test

import (
	"testing"

	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/dockerarchive"
	"github.com/ferry-dev/ferry/store/storetest"
)

// TestContract runs the store contract (package storetest) on a
// docker-archive, read back once it is closed. It holds one image: the
// target is a store.ImageOnly, which the suite checks refuses an index.
func TestContract(t *testing.T) {
	storetest.Run(t, storetest.At("image.tar",
		func(p string) (store.Target, error) { return dockerarchive.Create(p, "app:v1") },
		func(p string) (store.Source, error) { return dockerarchive.OpenSource(p, "app:v1") },
	), storetest.Options{})
}
