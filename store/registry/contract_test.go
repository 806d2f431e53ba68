package registry_test

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/registry"
	"github.com/ferry-dev/ferry/store/storetest"
)

// TestContract runs the store contract (package storetest) on a repository
// of the embedded registry on loopback.
func TestContract(t *testing.T) {
	ctx := context.Background()
	storetest.Run(t, func(t *testing.T, dir string) (store.Target, storetest.Reopen) {
		reg := fixture.NewRegistry(t)
		ref, err := name.ParseReference(reg.Ref("team/app", "v1"))
		if err != nil {
			t.Fatal(err)
		}
		repo, err := registry.Open(ctx, ref, registry.WithPush())
		if err != nil {
			t.Fatal(err)
		}
		return repo, func(t *testing.T) (store.Source, error) { return registry.Open(ctx, ref) }
	}, storetest.Options{})
}
