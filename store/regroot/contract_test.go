package regroot_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/regroot"
	"github.com/ferry-dev/ferry/store/storetest"
)

// TestContract runs the store contract (package storetest) on a
// repository of a registry storage root.
func TestContract(t *testing.T) {
	ctx := context.Background()
	storetest.Run(t, func(t *testing.T, dir string) (store.Target, storetest.Reopen) {
		root, err := regroot.Open(ctx, filepath.Join(dir, "root"), regroot.WithCreate())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { root.Close() })
		repo, err := root.Repository(ctx, "team/app", "v1")
		if err != nil {
			t.Fatal(err)
		}
		return repo, func(t *testing.T) (store.Source, error) { return root.Repository(ctx, "team/app", "v1") }
	}, storetest.Options{})
}
