package registry

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

// TestClientsShareOneClientPerScopes: eight Repos of one repository opened
// at once with one Clients ping the registry once; with other scopes
// (push) they get another client; without Clients, each pings.
func TestClientsShareOneClientPerScopes(t *testing.T) {
	reg := fixture.NewRegistry(t)
	open := func(tag string, opts ...Option) *Repo {
		t.Helper()
		ref, err := name.ParseReference(reg.Ref("app", tag))
		if err != nil {
			t.Fatal(err)
		}
		r, err := Open(context.Background(), ref, append(opts, WithInsecure(true))...)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	pings := func() int { return reg.Count("GET", "/v2/") }
	cs := &Clients{}
	before := pings()
	var g errgroup.Group
	repos := make([]*Repo, 8)
	for i := range repos {
		g.Go(func() error { repos[i] = open("v1", WithClients(cs)); return nil })
	}
	g.Wait()
	if n := pings() - before; n != 1 {
		t.Errorf("8 Repos sharing clients pinged %d times, want 1", n)
	}
	for _, r := range repos[1:] {
		if r.c != repos[0].c {
			t.Fatal("Repos of one repository and scopes got different clients")
		}
	}
	if pushing := open("v2", WithClients(cs), WithPush()); pushing.c == repos[0].c {
		t.Error("a Repo asking for push got the pull-only client")
	}
	before = pings()
	open("v1")
	open("v1")
	if n := pings() - before; n != 2 {
		t.Errorf("2 Repos without Clients pinged %d times, want 2", n)
	}
}

// TestClientsShareTheirPings: Repos of one registry opened with one
// Clients for other scopes (each repository of a sync, and the mounts
// between them) get their own clients but ping the registry once.
func TestClientsShareTheirPings(t *testing.T) {
	reg := fixture.NewRegistry(t)
	cs := &Clients{}
	before := reg.Count("GET", "/v2/")
	var g errgroup.Group
	for _, repo := range []string{"a", "b", "c", "d"} {
		g.Go(func() error {
			ref, err := name.ParseReference(reg.Ref(repo, "v1"))
			if err != nil {
				return err
			}
			from, err := name.NewRepository(reg.Host + "/base")
			if err != nil {
				return err
			}
			_, err = Open(context.Background(), ref, WithInsecure(true), WithClients(cs), WithPush(), WithMountFrom(from))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if n := reg.Count("GET", "/v2/") - before; n != 1 {
		t.Errorf("4 Repos with their own scopes sharing one Clients pinged %d times, want 1", n)
	}
}
