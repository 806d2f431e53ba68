package imagemod

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/platform"
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/transfer"
)

type options struct {
	set         map[string]bool // names of the options given
	oldBase     store.Source
	resolver    store.Resolver
	blobs       *transfer.Blobs
	baseName    string
	dryRun      bool
	platform    *platform.Spec
	labels      map[string]string
	annotations map[string]string
	tempDir     string
	entrypoint  []string
	created     time.Time
	beforeTag   func(context.Context, *IndexResult) error
}

// Option configures Rebase, Append, IndexCreate and PushSpec. Each
// function refuses options that mean nothing to it rather than ignore
// them.
type Option func(*options) error

func named(name string, fn func(*options) error) Option {
	return func(o *options) error {
		o.set[name] = true
		return fn(o)
	}
}

// WithOldBase gives Rebase the image (or index) the app was built on. The
// default reads it from the app's org.opencontainers.image.base.name and
// .base.digest annotations, opened with WithResolver.
func WithOldBase(src store.Source) Option {
	return named("old base", func(o *options) error {
		if src == nil {
			return errors.New("old base: nil source")
		}
		o.oldBase = src
		return nil
	})
}

// WithResolver opens the references found in annotations (Rebase). The
// default refuses every reference.
func WithResolver(r store.Resolver) Option {
	return func(o *options) error { o.resolver = r; return nil }
}

// WithBlobs sets how blobs are copied: the foreign-layer policy, the
// fetcher for foreign URLs, concurrency and progress events. The default
// is transfer.NewBlobs() (foreign layers kept at their urls).
func WithBlobs(b *transfer.Blobs) Option {
	return func(o *options) error {
		if b == nil {
			return errors.New("blobs: nil")
		}
		o.blobs = b
		return nil
	}
}

// WithBaseName sets the reference recorded in the
// org.opencontainers.image.base.name annotation of the result. The
// default is the base source's name.
func WithBaseName(ref string) Option {
	return named("base name", func(o *options) error { o.baseName = ref; return nil })
}

// WithDryRun plans the change and reports it without writing anything.
// The default writes.
func WithDryRun() Option {
	return named("dry run", func(o *options) error { o.dryRun = true; return nil })
}

// WithPlatform tells Append which entry of a base index to build on, or,
// on scratch, which platform the image is for (os/arch[:os.version]).
// There is no default: a base index with more than one entry, or scratch,
// needs it.
func WithPlatform(s platform.Spec) Option {
	return named("platform", func(o *options) error {
		if s.All || s.LatestUBR {
			return fmt.Errorf("platform %s: name one platform", s)
		}
		o.platform = &s
		return nil
	})
}

// WithLabels adds config labels (Append). The default adds none.
func WithLabels(kv map[string]string) Option {
	return named("labels", func(o *options) error {
		for k, v := range kv {
			o.labels[k] = v
		}
		return nil
	})
}

// WithEntrypoint sets the config's entrypoint (Append), replacing the
// base's, and clears the base's cmd, whose arguments were meant for the
// old entrypoint. The default keeps the base's.
func WithEntrypoint(argv ...string) Option {
	return named("entrypoint", func(o *options) error {
		if len(argv) == 0 || argv[0] == "" {
			return errors.New("entrypoint: empty")
		}
		o.entrypoint = argv
		return nil
	})
}

// WithCreated sets the config's created time and that of the history
// entries Append adds — for a reproducible image, a fixed time such as
// the commit's. The default leaves created as the base has it (unset on
// scratch) and the new history entries without one.
func WithCreated(t time.Time) Option {
	return named("created", func(o *options) error {
		if t.IsZero() {
			return errors.New("created: zero time")
		}
		o.created = t.UTC()
		return nil
	})
}

// WithAnnotations adds manifest (Append, Attach) or index (IndexCreate,
// PushSpec) annotations. The default adds none.
func WithAnnotations(kv map[string]string) Option {
	return named("annotations", func(o *options) error {
		for k, v := range kv {
			o.annotations[k] = v
		}
		return nil
	})
}

// WithBeforeTag has IndexCreate call fn once the images are written
// (their manifests pushed, untagged) and before the index is tagged: an
// error from fn writes no tag and is returned. It is how referrers of the
// platform manifests (SBOMs, signatures) are attached before the tag
// makes the index visible, so that it is never seen without them. The
// default calls nothing.
func WithBeforeTag(fn func(ctx context.Context, written *IndexResult) error) Option {
	return named("before tag", func(o *options) error {
		if fn == nil {
			return errors.New("before tag: nil function")
		}
		o.beforeTag = fn
		return nil
	})
}

// WithTempDir sets where Append compresses layers before uploading them.
// The default is os.TempDir().
func WithTempDir(dir string) Option {
	return named("temp dir", func(o *options) error { o.tempDir = dir; return nil })
}

// makeOptions applies opts and refuses any that fn (named for messages)
// does not honour.
func makeOptions(fn string, opts []Option, allowed ...string) (*options, error) {
	o := &options{set: map[string]bool{}, labels: map[string]string{}, annotations: map[string]string{}}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[a] = true
	}
	var bad []string
	for n := range o.set {
		if !ok[n] {
			bad = append(bad, n)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return nil, fmt.Errorf("%s does not take the option(s) %s", fn, strings.Join(bad, ", "))
	}
	if o.blobs == nil {
		b, err := transfer.NewBlobs()
		if err != nil {
			return nil, err
		}
		o.blobs = b
	}
	if o.resolver == nil {
		o.resolver = noResolver{}
	}
	return o, nil
}
