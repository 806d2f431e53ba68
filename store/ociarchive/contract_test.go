package ociarchive_test

import (
	"path/filepath"
	"testing"

	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/ociarchive"
	"github.com/ferry-dev/ferry/store/storetest"
)

// TestContract runs the store contract (package storetest) on an
// oci-archive, read back once it is closed.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dir string) (store.Target, storetest.Reopen) {
		p := filepath.Join(dir, "image.tar")
		tg, err := ociarchive.Create(p, "v1")
		if err != nil {
			t.Fatal(err)
		}
		return tg, func(t *testing.T) (store.Source, error) { return ociarchive.OpenSource(p, "v1") }
	}, storetest.Options{})
}
