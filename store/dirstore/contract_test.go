package dirstore_test

import (
	"path/filepath"
	"testing"

	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/dirstore"
	"github.com/ferry-dev/ferry/store/storetest"
)

// TestContract runs the store contract (package storetest) on a dir:
// directory.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dir string) (store.Target, storetest.Reopen) {
		p := filepath.Join(dir, "image")
		d, err := dirstore.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		return d, func(t *testing.T) (store.Source, error) { return dirstore.Open(p), nil }
	}, storetest.Options{})
}
