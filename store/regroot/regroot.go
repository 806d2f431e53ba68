// Package regroot is the store backend for a docker/registry storage root:
// the directory a distribution registry (docker/registry, Harbor, ferry
// serve) keeps its images in, read and written offline, with no server
// running. Every write goes through distribution's own storage package —
// its blob store, manifest service and tag service — so what lands on disk
// is exactly what the registry itself would write:
//
//	ROOT/
//	  docker/registry/v2/
//	    blobs/sha256/<xx>/<hex>/data                      every blob, once
//	    repositories/<name>/
//	      _layers/sha256/<hex>/link                       blobs of the repository
//	      _manifests/revisions/sha256/<hex>/link          its manifests and indexes
//	      _manifests/tags/<tag>/current/link              what the tag points at
//	      _manifests/tags/<tag>/index/sha256/<hex>/link   what it has pointed at
//	      _uploads/                                       uploads in progress
//	  .ferry.lock                                         see internal/regstorage/rootlock
//
// Besides the store (Repo, a store.Source and store.Target bound to one
// repository and tag), the package checks a root (Fsck) and collects its
// garbage (GC, distribution's mark and sweep).
package regroot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"

	"github.com/ferry-dev/ferry/internal/regstorage"
	"github.com/ferry-dev/ferry/internal/regstorage/fsdriver"
	"github.com/ferry-dev/ferry/internal/regstorage/rootlock"
	"github.com/ferry-dev/ferry/internal/regstorage/urlrules"
)

// DataDir is where a root keeps its data, relative to the root.
const DataDir = regstorage.DataDir

// DefaultForeignURLsAllow is the pattern URLs of foreign layers must match
// unless WithForeignURLs says otherwise: http or https, so that an import
// keeps any foreign layer the source had (--foreign keep).
const DefaultForeignURLsAllow = `^https?://`

// Sentinel errors, matched with errors.Is.
var (
	// ErrNotRoot means a directory exists but is not a registry storage
	// root (it has no docker/registry/v2); it is regstorage.ErrNotRoot,
	// which server.ErrNotRoot is too.
	ErrNotRoot = regstorage.ErrNotRoot
	// ErrInvalidName means a repository name or tag is not valid.
	ErrInvalidName = errors.New("invalid repository name")
)

type options struct {
	create bool
	holder string
	allow  []string
	deny   []string
	// urls are allow and deny compiled, nil until WithForeignURLs.
	urls *urlrules.Rules
}

// Option configures Open.
type Option func(*options) error

// WithCreate lets Open start a new root: a directory that does not exist or
// is empty. Without it (the default), Open requires an existing root.
func WithCreate() Option {
	return func(o *options) error { o.create = true; return nil }
}

// WithForeignURLs sets the regular expressions URLs of foreign layers in
// written manifests must match (allow) and must not match (deny), as
// distribution's validation.manifests.urls does. The default allow pattern
// is DefaultForeignURLsAllow; the default deny list is empty.
func WithForeignURLs(allow, deny []string) Option {
	return func(o *options) error {
		a := o.allow
		if allow != nil {
			a = allow
		}
		urls, err := urlrules.New(a, deny)
		if err != nil {
			return fmt.Errorf("regroot: %w", err)
		}
		o.allow, o.deny, o.urls = a, deny, urls
		return nil
	}
}

// WithLock takes the root's lock (internal/regstorage/rootlock) for as long as the
// Root is open, describing the holder as holder ("ferry storage gc"). Open
// then fails with an error wrapping rootlock.ErrLocked while another
// process — a ferry serve — holds the root. The default takes no lock.
func WithLock(holder string) Option {
	return func(o *options) error {
		if holder == "" {
			return errors.New("regroot: empty lock holder")
		}
		o.holder = holder
		return nil
	}
}

func makeOptions(opts []Option) (*options, error) {
	o := &options{allow: []string{DefaultForeignURLsAllow}}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Root is an open registry storage root.
type Root struct {
	dir    string
	driver storagedriver.StorageDriver
	ns     distribution.Namespace
	lock   *rootlock.Lock
}

// repoName is the distribution spec's repository name grammar.
var repoName = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)

// Open opens the registry storage root at dir. The error wraps
// fs.ErrNotExist when dir does not exist and ErrNotRoot when it is not a
// root, unless WithCreate allows starting one.
func Open(ctx context.Context, dir string, opts ...Option) (*Root, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("storage root %s: %w", dir, err)
	}
	if err := CheckRoot(dir); err != nil {
		if o.holder != "" {
			// A root a server holds but has not written to yet: say
			// who holds it rather than that it is no root.
			if herr := rootlock.Held(abs); herr != nil {
				return nil, herr
			}
		}
		if !o.create {
			return nil, err
		}
		// A new root starts in a directory that does not exist or is
		// empty (a lock file aside).
		other, serr := rootlock.Stranger(abs)
		if serr != nil {
			return nil, fmt.Errorf("%w (%w)", err, serr)
		}
		if other != "" {
			return nil, fmt.Errorf("%w (it holds %s)", err, other)
		}
		if err := os.MkdirAll(filepath.Join(abs, filepath.FromSlash(DataDir)), 0o755); err != nil {
			return nil, fmt.Errorf("storage root %s: %w", dir, err)
		}
	}
	var lock *rootlock.Lock
	if o.holder != "" {
		if lock, err = rootlock.Acquire(abs, o.holder); err != nil {
			return nil, err
		}
	}
	root, err := open(ctx, dir, abs, o)
	if err != nil {
		_ = lock.Release()
		return nil, err
	}
	root.lock = lock
	return root, nil
}

func open(ctx context.Context, dir, abs string, o *options) (*Root, error) {
	d, err := newDriver(abs)
	if err != nil {
		return nil, fmt.Errorf("storage root %s: %w", dir, err)
	}
	return newRoot(ctx, dir, d, o)
}

// newRoot builds distribution's storage namespace on d, named name in
// messages, with the options' foreign-URL rules. An index is refused
// unless every manifest it lists is present, as a manifest is unless its
// config and (non-foreign) layers are.
func newRoot(ctx context.Context, name string, d storagedriver.StorageDriver, o *options) (*Root, error) {
	urls := o.urls
	if urls == nil {
		var err error
		if urls, err = urlrules.New(o.allow, o.deny); err != nil {
			return nil, fmt.Errorf("regroot: %w", err)
		}
	}
	ropts := []storage.RegistryOption{
		storage.EnableDelete,
		storage.EnableValidateImageIndexImagesExist,
		storage.ManifestURLsAllowRegexp(urls.AllowRegexp()),
	}
	if deny := urls.DenyRegexp(); deny != nil {
		ropts = append(ropts, storage.ManifestURLsDenyRegexp(deny))
	}
	ns, err := storage.NewRegistry(ctx, d, ropts...)
	if err != nil {
		return nil, fmt.Errorf("storage root %s: %w", name, err)
	}
	return &Root{dir: name, driver: d, ns: ns}, nil
}

// newDriver returns distribution's filesystem driver on abs, made to work
// on Windows too (internal/regstorage/fsdriver).
func newDriver(abs string) (storagedriver.StorageDriver, error) {
	return fsdriver.New(abs)
}

// CheckRoot says whether dir is a registry storage root: nil when it is,
// an error wrapping fs.ErrNotExist when dir does not exist, and one
// wrapping ErrNotRoot when it exists without docker/registry/v2.
func CheckRoot(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		// The same words on every OS (Windows says "cannot find the file").
		return fmt.Errorf("storage root %s: no such file or directory: %w", dir, fs.ErrNotExist)
	}
	if err != nil {
		return fmt.Errorf("storage root %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("storage root %s: not a directory: %w", dir, ErrNotRoot)
	}
	fi, err = os.Stat(filepath.Join(dir, filepath.FromSlash(DataDir)))
	if err != nil || !fi.IsDir() {
		return fmt.Errorf("storage root %s: no %s inside: %w", dir, DataDir, ErrNotRoot)
	}
	return nil
}

// Close releases the root's lock, if it holds one.
func (r *Root) Close() error { return r.lock.Release() }

// Dir returns the root's directory as given to Open.
func (r *Root) Dir() string { return r.dir }

// ParseName splits "NAME[:TAG]" into a repository name and a tag ("latest"
// when none is given) and checks both against the distribution grammar. A
// host with a port or a digest is refused: a storage root holds
// repositories, not registries. The error wraps ErrInvalidName.
func ParseName(s string) (name, tag string, err error) {
	name, tag = s, "latest"
	if i := strings.LastIndex(s, ":"); i > strings.LastIndex(s, "/") {
		name, tag = s[:i], s[i+1:]
	}
	if strings.Contains(name, "@") {
		return "", "", fmt.Errorf("%q: %w: give NAME[:TAG], not a digest", s, ErrInvalidName)
	}
	if _, err := checkName(name, tag); err != nil {
		return "", "", fmt.Errorf("%q: %w", s, err)
	}
	return name, tag, nil
}

// checkName checks a repository name and a tag (unless empty) against the
// distribution grammar; the error wraps ErrInvalidName.
func checkName(name, tag string) (reference.Named, error) {
	named, err := reference.WithName(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidName, err)
	}
	if !repoName.MatchString(named.Name()) {
		return nil, fmt.Errorf("%w: a repository path of lowercase components such as team/app, without a registry host", ErrInvalidName)
	}
	if tag != "" {
		if _, err := reference.WithTag(named, tag); err != nil {
			return nil, fmt.Errorf("%w: tag %q: %w", ErrInvalidName, tag, err)
		}
	}
	return named, nil
}

// Repositories lists the root's repositories in lexical order.
func (r *Root) Repositories(ctx context.Context) ([]string, error) {
	enum, ok := r.ns.(distribution.RepositoryEnumerator)
	if !ok {
		return nil, errors.New("regroot: the storage namespace cannot list repositories")
	}
	var names []string
	err := enum.Enumerate(ctx, func(name string) error {
		names = append(names, name)
		return nil
	})
	var pnf storagedriver.PathNotFoundError
	if err != nil && !errors.As(err, &pnf) {
		return nil, fmt.Errorf("repositories of %s: %w", r.dir, err)
	}
	return names, nil
}
