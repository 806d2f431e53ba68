package imagemod

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/platform"
	"github.com/ferry-dev/ferry/store/ocilayout"
	"github.com/ferry-dev/ferry/store/registry"
)

// TestIndexCreateBeforeTag: WithBeforeTag's function runs once the
// platform manifests are in the registry and before the index's tag is;
// its error leaves no tag, and without one the tag follows it.
func TestIndexCreateBeforeTag(t *testing.T) {
	ctx := context.Background()
	reg := fixture.NewRegistry(t)
	tree := t.TempDir()
	if err := os.WriteFile(filepath.Join(tree, "hello"), []byte("hi"), 0o755); err != nil {
		t.Fatal(err)
	}
	stage := t.TempDir()
	var entries []IndexEntry
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		spec, err := platform.ParseSpec(p)
		if err != nil {
			t.Fatal(err)
		}
		l := ocilayout.Open(stage, spec.Architecture, "")
		if _, err := Append(ctx, nil, l, []Layer{{Path: tree}}, WithPlatform(spec)); err != nil {
			t.Fatal(err)
		}
		l.Close()
		entries = append(entries, IndexEntry{Source: ocilayout.Open(stage, spec.Architecture, "")})
	}
	open := func(tag string) *registry.Repo { return pushTo(t, reg, "app", tag) }

	refused := errors.New("refused by the hook")
	dst := open("failed")
	_, err := IndexCreate(ctx, dst, entries, nil, WithBeforeTag(func(ctx context.Context, res *IndexResult) error {
		if len(res.Entries) != 2 {
			t.Errorf("the hook got %d entries, want 2", len(res.Entries))
		}
		for _, e := range res.Entries {
			if _, err := dst.FetchManifest(ctx, e); err != nil {
				t.Errorf("platform manifest %s not written before the hook: %v", e.Digest, err)
			}
		}
		if reg.TagExists(t, "app", "failed") {
			t.Error("the index was tagged before the hook ran")
		}
		return refused
	}))
	if !errors.Is(err, refused) {
		t.Fatalf("IndexCreate: %v, want the hook's error", err)
	}
	if reg.TagExists(t, "app", "failed") {
		t.Error("a failed hook left the tag")
	}

	ran := false
	_, err = IndexCreate(ctx, open("ok"), entries, nil, WithBeforeTag(func(context.Context, *IndexResult) error {
		ran = true
		return nil
	}))
	if err != nil || !ran || !reg.TagExists(t, "app", "ok") {
		t.Fatalf("IndexCreate: %v, hook ran %v, tag ok written %v", err, ran, reg.TagExists(t, "app", "ok"))
	}
	if _, err := IndexCreate(ctx, open("nil"), entries, nil, WithBeforeTag(nil)); err == nil {
		t.Error("a nil hook was taken")
	}
	if _, err := Append(ctx, nil, open("append"), nil, WithBeforeTag(func(context.Context, *IndexResult) error { return nil })); err == nil {
		t.Error("Append took WithBeforeTag")
	}
}

// pushTo opens repo:tag of reg for pushing, closed when the test ends.
func pushTo(t *testing.T, reg *fixture.Registry, repo, tag string) *registry.Repo {
	t.Helper()
	ref, err := name.ParseReference(reg.Ref(repo, tag))
	if err != nil {
		t.Fatal(err)
	}
	dst, err := registry.Open(context.Background(), ref, registry.WithPush(), registry.WithInsecure(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dst.Close() })
	return dst
}
