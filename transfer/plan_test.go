package transfer_test

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferry-dev/ferry/foreign"
	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/platform"
	"github.com/ferry-dev/ferry/store/ocilayout"
	"github.com/ferry-dev/ferry/store/registry"
	"github.com/ferry-dev/ferry/transfer"
)

// TestPlanPredictsWhatCopyWrites checks that Plan works out the digest
// Copy writes, for a plain copy, a platform selection and a localize
// (a new index over new manifests), without writing anything.
func TestPlanPredictsWhatCopyWrites(t *testing.T) {
	ctx := context.Background()
	e := fixture.MicrosoftLike(t)
	f, err := foreign.NewFetcher(foreign.WithAllow(".*"))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := platform.ParseSpec("windows/amd64:ltsc2019")
	if err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string][]transfer.Option{
		"plain":     nil,
		"platform":  {transfer.WithPlatforms(spec)},
		"localize":  {transfer.WithForeign(transfer.Localize)},
		"localize1": {transfer.WithForeign(transfer.Localize), transfer.WithPlatforms(spec)},
	} {
		src, err := registry.Open(ctx, mustRef(t, e.Reg.Ref(fixture.Repo, fixture.IndexTag)))
		if err != nil {
			t.Fatal(err)
		}
		gets := e.Reg.Count("GET", "/blobs/")
		p, err := transfer.Plan(ctx, src, append(opts, transfer.WithFetcher(f))...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n := e.Reg.Count("GET", "/blobs/") - gets; n != 0 {
			t.Errorf("%s: Plan read %d blobs", name, n)
		}
		dst := ocilayout.Open(t.TempDir(), "x", "")
		res, err := transfer.Copy(ctx, src, dst, append(opts, transfer.WithFetcher(f), transfer.WithRoot(p.Source, p.SourceRaw))...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.Written.Digest != p.Written.Digest {
			t.Errorf("%s: planned %s, Copy wrote %s", name, p.Written.Digest, res.Written.Digest)
		}
		if name == "plain" && p.Written.Digest != e.Index {
			t.Errorf("plain: planned %s, want the source index %s", p.Written.Digest, e.Index)
		}
		src.Close()
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
