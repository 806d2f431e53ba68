// Package opener turns locations into stores: it is the one place that
// knows every backend (registry, OCI layout, oci-archive, docker-archive,
// dir:, registry storage root) and the one place the network settings —
// insecure, stall timeout, retry delay — become the options of the
// registry client, the foreign-URL fetcher and the copy engine.
//
// Commands and libraries hand it a location (or, through Resolver, a
// reference as a user writes it) and get a store.Source or store.Target;
// they never switch over backends themselves.
package opener

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferry-dev/ferry/auth"
	"github.com/ferry-dev/ferry/foreign"
	"github.com/ferry-dev/ferry/location"
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/dirstore"
	"github.com/ferry-dev/ferry/store/dockerarchive"
	"github.com/ferry-dev/ferry/store/ociarchive"
	"github.com/ferry-dev/ferry/store/ocilayout"
	"github.com/ferry-dev/ferry/store/registry"
	"github.com/ferry-dev/ferry/transfer"
)

// DefaultStallTimeout is how long a request may go without moving a byte
// before it is abandoned and retried, unless Network says otherwise.
const DefaultStallTimeout = registry.DefaultStallTimeout

// Network is how ferry talks to registries and foreign URLs. Its zero
// value is secure (HTTPS, except to loopback hosts), never abandons a
// stalled request, and retries with exponential backoff; DefaultNetwork
// abandons stalled requests after DefaultStallTimeout.
type Network struct {
	// Insecure allows plain HTTP to registries that are not on loopback.
	Insecure bool
	// StallTimeout abandons and retries a registry or foreign-URL request
	// after this long without a byte moving; 0 never does.
	StallTimeout time.Duration
	// RetryDelay replaces the exponential backoff between retries of a
	// request or blob by this fixed wait; 0 keeps the backoff.
	RetryDelay time.Duration
}

// DefaultNetwork is secure, abandons stalled requests after
// DefaultStallTimeout and retries with exponential backoff.
func DefaultNetwork() Network { return Network{StallTimeout: DefaultStallTimeout} }

// RegistryOptions are the registry client's options for n.
func (n Network) RegistryOptions() []registry.Option {
	opts := []registry.Option{registry.WithInsecure(n.Insecure), registry.WithStallTimeout(n.StallTimeout)}
	if n.RetryDelay > 0 {
		opts = append(opts, registry.WithRetryDelay(n.RetryDelay))
	}
	return opts
}

// ForeignOptions are the foreign-URL fetcher's options for n: its stall
// timeout and, with a RetryDelay, a fixed backoff.
func (n Network) ForeignOptions() []foreign.Option {
	opts := []foreign.Option{foreign.WithStallTimeout(n.StallTimeout)}
	if n.RetryDelay > 0 {
		opts = append(opts, foreign.WithBackoff(n.RetryDelay, n.RetryDelay))
	}
	return opts
}

// TransferOptions are the copy engine's options for n: with a
// RetryDelay, its fixed wait between blob retries.
func (n Network) TransferOptions() []transfer.Option {
	if n.RetryDelay > 0 {
		return []transfer.Option{transfer.WithRetryDelay(n.RetryDelay)}
	}
	return nil
}

// Parse parses a location as a user writes it; with Insecure, registry
// references may use plain HTTP.
func (n Network) Parse(s string) (location.Location, error) {
	var opts []location.Option
	if n.Insecure {
		opts = append(opts, location.WithInsecure())
	}
	return location.Parse(s, opts...)
}

// Opener opens locations into stores with one Network. Sources and
// targets that Source and Target return belong to the caller, who closes
// them; Close closes what the opener keeps itself: the sources its
// Resolver opened and the storage roots it opened.
type Opener struct {
	net     Network
	extra   []registry.Option // WithAccess's
	clients *registry.Clients // shared by the repositories it opens
	closer  []io.Closer
}

// New returns an Opener that talks to registries and foreign URLs as net
// says. The registry repositories it opens share their clients (one
// connection pool and token per registry and access asked for).
func New(net Network) *Opener { return &Opener{net: net, clients: &registry.Clients{}} }

// Network returns the opener's network settings.
func (o *Opener) Network() Network { return o.net }

// Close closes what the opener kept open, last opened first, and returns
// the first error.
func (o *Opener) Close() error {
	var first error
	for i := len(o.closer) - 1; i >= 0; i-- {
		if err := o.closer[i].Close(); err != nil && first == nil {
			first = err
		}
	}
	o.closer = nil
	return first
}

// invalidError is a request that makes no sense for its location. It
// matches location.ErrInvalid, so that callers treat it as bad input, and
// reads as its message alone.
type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == location.ErrInvalid }

// unsupported is the error for a location kind no backend opens.
func unsupported(loc location.Location) error {
	return fmt.Errorf("%s: %s locations are not supported yet", loc.Raw, loc.Kind)
}

// Source opens loc for reading.
func (o *Opener) Source(ctx context.Context, loc location.Location) (store.Source, error) {
	switch loc.Kind {
	case location.Registry:
		return registry.Open(ctx, loc.Ref, o.registryOptions()...)
	case location.OCILayout:
		return ocilayout.Open(loc.Path, loc.Tag, loc.Digest), nil
	case location.OCIArchive:
		return ociarchive.OpenSourceAt(loc.Path, loc.Tag, loc.Digest)
	case location.DockerArchive:
		return dockerarchive.OpenSource(loc.Path, loc.Tag)
	case location.Dir:
		return dirstore.Open(loc.Path), nil
	}
	return nil, unsupported(loc)
}

// Target opens loc for writing. from, when not nil, is the source being
// copied: a repository on the same registry is where blobs are mounted
// from, and a registry source's tag is the REPO:TAG a docker-archive
// records when loc names none (see DefaultRepoTag). Writing to an OCI
// layout by digest is refused with an error matching location.ErrInvalid.
func (o *Opener) Target(ctx context.Context, loc location.Location, from store.Source) (store.Target, error) {
	switch loc.Kind {
	case location.Registry:
		opts := append(o.registryOptions(), registry.WithPush())
		if repo, ok := MountSource(loc, from); ok {
			opts = append(opts, registry.WithMountFrom(repo))
		}
		return registry.Open(ctx, loc.Ref, opts...)
	case location.OCILayout:
		if loc.Digest != "" {
			return nil, &invalidError{fmt.Sprintf("%s: write to a layout by tag, not by digest", loc.Raw)}
		}
		return ocilayout.Open(loc.Path, loc.Tag, ""), nil
	case location.OCIArchive:
		if loc.Digest != "" {
			return nil, &invalidError{fmt.Sprintf("%s: write to an archive by tag, not by digest", loc.Raw)}
		}
		return ociarchive.Create(loc.Path, loc.Tag)
	case location.DockerArchive:
		return dockerarchive.Create(loc.Path, DefaultRepoTag(loc, from))
	case location.Dir:
		return dirstore.Create(loc.Path)
	}
	return nil, unsupported(loc)
}

// MountSource returns the repository blobs written to the registry
// location dst may be mounted from: from's, when from is a repository on
// the same registry.
func MountSource(dst location.Location, from store.Source) (name.Repository, bool) {
	r, ok := from.(*registry.Repo)
	if !ok || dst.Kind != location.Registry || r.Repository().RegistryStr() != dst.Ref.Context().RegistryStr() {
		return name.Repository{}, false
	}
	return r.Repository(), true
}

// SourceTag returns the tag a registry source was opened by; false when
// src is no registry repository or was opened by digest.
func SourceTag(src store.Source) (name.Tag, bool) {
	r, ok := src.(*registry.Repo)
	if !ok {
		return name.Tag{}, false
	}
	t, ok := r.Reference().(name.Tag)
	return t, ok
}

// DefaultRepoTag is the REPO:TAG a docker-archive at loc records: the one
// loc names, else the tag of from when it is a registry source, as docker
// save would record it; else none.
func DefaultRepoTag(loc location.Location, from store.Source) string {
	if loc.Tag != "" {
		return loc.Tag
	}
	if t, ok := SourceTag(from); ok {
		return t.String()
	}
	return ""
}

// Repository is a registry repository, for what only a registry does.
type Repository interface {
	store.Source
	// Tags lists the repository's tags.
	Tags(ctx context.Context) ([]string, error)
	// Delete deletes what the reference names: by tag the tag alone,
	// by digest the manifest (see registry.Repo.Delete).
	Delete(ctx context.Context) error
	// Pointers lists the tags and tagged indexes of the repository that
	// point at the manifest the reference names.
	Pointers(ctx context.Context) (*Pointers, error)
}

// Pointers is what in a repository points at one manifest.
type Pointers = registry.Pointers

// Repository opens the registry location loc, with push and delete
// access when push is set (for deleting). Other kinds of location are refused with an error matching
// location.ErrInvalid.
func (o *Opener) Repository(ctx context.Context, loc location.Location, push bool) (Repository, error) {
	if loc.Kind != location.Registry {
		return nil, &invalidError{fmt.Sprintf("%s: this command needs a registry reference, not a %s location", loc.Raw, loc.Kind)}
	}
	opts := o.registryOptions()
	if push {
		opts = append(opts, registry.WithPush(), registry.WithDelete(loc.Ref.Context()))
	}
	return registry.Open(ctx, loc.Ref, opts...)
}

// Registry is a registry host, for what concerns the whole registry.
type Registry struct {
	reg      name.Registry
	insecure bool
}

// Registry returns the registry at host (HOST[:PORT]); plain HTTP with
// Insecure or on loopback.
func (o *Opener) Registry(host string) (*Registry, error) {
	reg, err := registry.NewRegistry(host, o.net.Insecure)
	if err != nil {
		return nil, err
	}
	return &Registry{reg: reg, insecure: o.net.Insecure}, nil
}

// Catalog lists the registry's repositories.
func (r *Registry) Catalog(ctx context.Context) ([]string, error) {
	return registry.Catalog(ctx, r.reg, registry.WithInsecure(r.insecure))
}

// Login checks user and password against the registry at host and stores
// them as docker login does.
func (o *Opener) Login(ctx context.Context, host, user, password string) error {
	return auth.Login(ctx, host, user, password, registry.WithInsecure(o.net.Insecure))
}

// Fetcher returns a foreign-URL fetcher with the network's timing that
// also allows the URLs the regular expressions allow match (else loopback
// and private addresses are refused), fetching one large blob over
// connections connections (0: the fetcher's default, one).
func (o *Opener) Fetcher(allow []string, connections int) (*foreign.Fetcher, error) {
	opts := append(o.net.ForeignOptions(), foreign.WithAllow(allow...))
	if connections > 0 {
		opts = append(opts, foreign.WithConnections(connections))
	}
	return foreign.NewFetcher(opts...)
}

// RewriteURLs parses FROM=TO, a rule rewriting foreign-layer URL prefixes,
// into the copy option that applies it.
func RewriteURLs(rule string) (transfer.Option, error) {
	rw, err := foreign.ParseRewrite(rule)
	if err != nil {
		return nil, err
	}
	return transfer.WithRewriteURLs(rw), nil
}

// Resolver returns the store.Resolver that opens references as a user
// writes them (any location form, parsed with the network's Insecure)
// through o. The sources it opens are closed by o.Close.
func (o *Opener) Resolver() store.Resolver { return resolver{o} }

// resolver is Opener's store.Resolver.
type resolver struct{ o *Opener }

func (r resolver) Source(ctx context.Context, ref string) (store.Source, error) {
	loc, err := r.o.net.Parse(ref)
	if err != nil {
		return nil, err
	}
	src, err := r.o.Source(ctx, loc)
	if err != nil {
		return nil, err
	}
	r.o.closer = append(r.o.closer, src)
	return src, nil
}

func (r resolver) Target(ctx context.Context, ref string, from store.Source) (store.Target, error) {
	loc, err := r.o.net.Parse(ref)
	if err != nil {
		return nil, err
	}
	return r.o.Target(ctx, loc, from)
}
