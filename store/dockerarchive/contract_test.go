package dockerarchive_test

import (
	"path/filepath"
	"testing"

	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/dockerarchive"
	"github.com/ferry-dev/ferry/store/storetest"
)

// TestContract runs the store contract (package storetest) on a
// docker-archive, read back once it is closed. It holds one image: the
// target is a store.ImageOnly, which the suite checks refuses an index.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dir string) (store.Target, storetest.Reopen) {
		p := filepath.Join(dir, "image.tar")
		tg, err := dockerarchive.Create(p, "app:v1")
		if err != nil {
			t.Fatal(err)
		}
		return tg, func(t *testing.T) (store.Source, error) { return dockerarchive.OpenSource(p, "app:v1") }
	}, storetest.Options{})
}
