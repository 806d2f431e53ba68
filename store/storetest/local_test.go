package storetest_test

import (
	"testing"

	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/dirstore"
	"github.com/ferry-dev/ferry/store/dockerarchive"
	"github.com/ferry-dev/ferry/store/ociarchive"
	"github.com/ferry-dev/ferry/store/ocilayout"
	"github.com/ferry-dev/ferry/store/storetest"
)

// TestLocalStores runs the contract on each store kept at one path: an OCI
// layout, a dir: directory, and the two archives, read back once closed.
// A docker-archive holds one image: its target is a store.ImageOnly, which
// the suite checks refuses an index. The registry and storage-root stores
// run it in their own packages.
func TestLocalStores(t *testing.T) {
	for _, s := range []struct {
		name, path string
		create     func(p string) (store.Target, error)
		open       func(p string) (store.Source, error)
	}{
		{"ocilayout", "layout",
			func(p string) (store.Target, error) { return ocilayout.Open(p, "v1", ""), nil },
			func(p string) (store.Source, error) { return ocilayout.Open(p, "v1", ""), nil }},
		{"dirstore", "image",
			func(p string) (store.Target, error) { return dirstore.Create(p) },
			func(p string) (store.Source, error) { return dirstore.Open(p), nil }},
		{"ociarchive", "image.tar",
			func(p string) (store.Target, error) { return ociarchive.Create(p, "v1") },
			func(p string) (store.Source, error) { return ociarchive.OpenSource(p, "v1") }},
		{"dockerarchive", "image.tar",
			func(p string) (store.Target, error) { return dockerarchive.Create(p, "app:v1") },
			func(p string) (store.Source, error) { return dockerarchive.OpenSource(p, "app:v1") }},
	} {
		t.Run(s.name, func(t *testing.T) {
			storetest.Run(t, storetest.At(s.path, s.create, s.open), storetest.Options{})
		})
	}
}
