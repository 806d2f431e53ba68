package aliaslinks

import (
	"context"
	"errors"
	"slices"
	"testing"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/opencontainers/go-digest"
)

func TestLinks(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	c1, c2 := digest.FromString("one"), digest.FromString("two")
	a1, a1b, a2 := digest.SHA512.FromString("one"), digest.SHA384.FromString("one"), digest.SHA512.FromString("two")
	for _, l := range []struct{ alias, canonical digest.Digest }{{a1, c1}, {a1b, c1}, {a2, c2}} {
		if err := Write(ctx, d, "lib/app", Layers, l.alias, l.canonical); err != nil {
			t.Fatal(err)
		}
	}
	// distribution's own canonical link, and a link to itself, are no
	// aliases.
	if err := d.PutContent(ctx, Path("lib/app", Layers, c1), []byte(c1)); err != nil {
		t.Fatal(err)
	}
	self := digest.SHA512.FromString("self")
	if err := d.PutContent(ctx, Path("lib/app", Layers, self), []byte(self)); err != nil {
		t.Fatal(err)
	}

	if got, err := Read(ctx, d, "lib/app", Layers, a1); err != nil || got != c1 {
		t.Errorf("Read %s: %s, %v; want %s", a1, got, err, c1)
	}
	if got := Path("lib/app", Revisions, a1); got != "/docker/registry/v2/repositories/lib/app/_manifests/revisions/sha512/"+a1.Encoded()+"/link" {
		t.Errorf("Path: %s", got)
	}
	found, err := Find(ctx, d, "lib/app", Layers, c1)
	slices.Sort(found)
	if err != nil || !slices.Equal(found, []digest.Digest{a1b, a1}) {
		t.Errorf("Find %s: %v, %v; want its sha384 and sha512 aliases", c1, found, err)
	}
	all, err := All(ctx, d, "lib/app", Layers)
	if err != nil || len(all) != 2 || !slices.Equal(all[c2], []digest.Digest{a2}) {
		t.Errorf("All: %v, %v", all, err)
	}
	// A repository without links has none, and no error.
	if all, err := All(ctx, d, "lib/none", Revisions); err != nil || len(all) != 0 {
		t.Errorf("All of a missing directory: %v, %v", all, err)
	}
	if _, err := Read(ctx, d, "lib/app", Revisions, a1); !errors.As(err, new(storagedriver.PathNotFoundError)) {
		t.Errorf("Read of a missing link: %v, want PathNotFoundError", err)
	}
}
