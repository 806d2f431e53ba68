package cli

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferry-dev/ferry/foreign"
	"github.com/ferry-dev/ferry/location"
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/dirstore"
	"github.com/ferry-dev/ferry/store/dockerarchive"
	"github.com/ferry-dev/ferry/store/ociarchive"
	"github.com/ferry-dev/ferry/store/ocilayout"
	"github.com/ferry-dev/ferry/store/registry"
)

// parseLocation parses a location argument; failures are usage errors.
func (g *globals) parseLocation(s string) (location.Location, error) {
	var opts []location.Option
	if g.insecure {
		opts = append(opts, location.WithInsecure())
	}
	loc, err := location.Parse(s, opts...)
	if err != nil {
		return location.Location{}, usageErr(err)
	}
	return loc, nil
}

// The global flags that tune retries, which copyFlags reads back from the
// command.
const (
	// stallFlag bounds how long a request may go without moving a byte.
	stallFlag = "stall-timeout"
	// retryDelayFlag replaces the backoff between retries by a fixed wait.
	retryDelayFlag = "retry-delay"
)

// registryOptions are the registry client options the global flags set.
func (g *globals) registryOptions() []registry.Option {
	opts := []registry.Option{registry.WithInsecure(g.insecure), registry.WithStallTimeout(g.stall)}
	if g.delay > 0 {
		opts = append(opts, registry.WithRetryDelay(g.delay))
	}
	return opts
}

// openSource opens a location for reading.
func (g *globals) openSource(ctx context.Context, loc location.Location) (store.Source, error) {
	switch loc.Kind {
	case location.Registry:
		return registry.Open(ctx, loc.Ref, g.registryOptions()...)
	case location.OCILayout:
		return ocilayout.Open(loc.Path, loc.Tag, loc.Digest), nil
	case location.OCIArchive:
		return ociarchive.OpenSource(loc.Path, loc.Tag)
	case location.DockerArchive:
		return dockerarchive.OpenSource(loc.Path, loc.Tag)
	case location.Dir:
		return dirstore.Open(loc.Path), nil
	}
	return nil, fmt.Errorf("%s: %s locations are not supported yet", loc.Raw, loc.Kind)
}

// openTarget opens a location for writing. src, when it is a repository on
// the same registry, is where blobs may be mounted from.
func (g *globals) openTarget(ctx context.Context, loc location.Location, src store.Source) (store.Target, error) {
	switch loc.Kind {
	case location.Registry:
		opts := append(g.registryOptions(), registry.WithPush())
		if r, ok := src.(*registry.Repo); ok && r.Repository().RegistryStr() == loc.Ref.Context().RegistryStr() {
			opts = append(opts, registry.WithMountFrom(r.Repository()))
		}
		return registry.Open(ctx, loc.Ref, opts...)
	case location.OCILayout:
		if loc.Digest != "" {
			return nil, usageErr(fmt.Errorf("%s: write to a layout by tag, not by digest", loc.Raw))
		}
		return ocilayout.Open(loc.Path, loc.Tag, ""), nil
	case location.OCIArchive:
		return ociarchive.Create(loc.Path, loc.Tag)
	case location.DockerArchive:
		return dockerarchive.Create(loc.Path, defaultRepoTag(loc, src))
	case location.Dir:
		return dirstore.Create(loc.Path)
	}
	return nil, fmt.Errorf("%s: %s locations are not supported yet", loc.Raw, loc.Kind)
}

// defaultRepoTag is the REPO:TAG a docker-archive records: the one the
// location names, else the source's own tag when it is a registry, as
// docker save would record it.
func defaultRepoTag(loc location.Location, src store.Source) string {
	if loc.Tag != "" {
		return loc.Tag
	}
	if r, ok := src.(*registry.Repo); ok {
		if t, ok := r.Reference().(name.Tag); ok {
			return t.String()
		}
	}
	return ""
}

// openRegistry opens a registry location, refusing other kinds.
func (g *globals) openRegistry(ctx context.Context, s string, push bool) (*registry.Repo, error) {
	loc, err := g.parseLocation(s)
	if err != nil {
		return nil, err
	}
	if loc.Kind != location.Registry {
		return nil, usageErr(fmt.Errorf("%s: this command needs a registry reference, not a %s location", s, loc.Kind))
	}
	opts := g.registryOptions()
	if push {
		opts = append(opts, registry.WithPush())
	}
	return registry.Open(ctx, loc.Ref, opts...)
}

// foreignTiming is the fetcher's share of the global --stall-timeout and
// --retry-delay, for commands that build a fetcher of their own.
func (g *globals) foreignTiming() []foreign.Option {
	opts := []foreign.Option{foreign.WithStallTimeout(g.stall)}
	if g.delay > 0 {
		opts = append(opts, foreign.WithBackoff(g.delay, g.delay))
	}
	return opts
}
