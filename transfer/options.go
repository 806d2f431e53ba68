package transfer

import (
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/foreign"
	"github.com/ferry-dev/ferry/internal/wait"
	"github.com/ferry-dev/ferry/platform"
)

// ForeignPolicy says what a copy does with foreign (non-distributable)
// layers.
type ForeignPolicy int

const (
	// Keep leaves foreign blobs where their urls point: they are not copied
	// and their descriptors are untouched, so the manifest digest is
	// preserved.
	Keep ForeignPolicy = iota
	// Include fetches foreign blobs and stores them at the destination; the
	// descriptors are untouched and the digest preserved.
	Include
	// Localize is Include, then each foreign descriptor gets the matching
	// distributable media type and loses its urls, so the manifests (and
	// the index listing them) get new digests.
	Localize
)

// String returns the policy's flag spelling.
func (p ForeignPolicy) String() string {
	switch p {
	case Keep:
		return "keep"
	case Include:
		return "include"
	case Localize:
		return "localize"
	}
	return fmt.Sprintf("ForeignPolicy(%d)", int(p))
}

// ParseForeignPolicy parses "keep", "include" or "localize".
func ParseForeignPolicy(s string) (ForeignPolicy, error) {
	switch strings.ToLower(s) {
	case "keep":
		return Keep, nil
	case "include":
		return Include, nil
	case "localize", "localise":
		return Localize, nil
	}
	return 0, fmt.Errorf("invalid foreign-layer policy %q: want keep, include or localize", s)
}

type options struct {
	foreign   ForeignPolicy
	fetcher   *foreign.Fetcher
	jobs      int
	platforms []platform.Spec
	rewrites  []foreign.Rewrite
	events    func(Event)
	retries   int
	backoff   wait.Backoff
	root      *v1.Descriptor // the caller's resolution of the source
	rootRaw   []byte         // and its content, if the caller fetched it
	ledger    *Ledger        // blob transfers shared with other copies
	referrers bool           // copy referrers too
}

// Option configures Copy.
type Option func(*options) error

// WithForeign sets the foreign-layer policy. The default is Keep.
func WithForeign(p ForeignPolicy) Option {
	return func(o *options) error {
		if p < Keep || p > Localize {
			return fmt.Errorf("invalid foreign-layer policy %d", int(p))
		}
		o.foreign = p
		return nil
	}
}

// WithFetcher sets the fetcher used for foreign blobs that the source does
// not hold. The default is foreign.NewFetcher() with its default policy.
func WithFetcher(f *foreign.Fetcher) Option {
	return func(o *options) error { o.fetcher = f; return nil }
}

// WithJobs sets how many blobs transfer at once. The default is 4.
func WithJobs(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("jobs must be at least 1, got %d", n)
		}
		o.jobs = n
		return nil
	}
}

// WithPlatforms copies only the index entries any of specs selects. With
// one entry selected the destination gets that manifest alone; with
// several, an index of them. The default copies every entry.
func WithPlatforms(specs ...platform.Spec) Option {
	return func(o *options) error { o.platforms = append(o.platforms, specs...); return nil }
}

// WithRoot copies root, the source's manifest or index as the caller
// already resolved it, instead of resolving the source again: a caller
// that looked at the source first (to choose a destination format, say)
// copies exactly what it looked at, even if the tag moved since, and
// without a second round trip. raw, when the caller fetched it too, is
// root's content, used instead of fetching it again; it must hash to
// root's digest.
func WithRoot(root v1.Descriptor, raw []byte) Option {
	return func(o *options) error {
		if raw != nil && !blob.Names(root.Digest, raw) {
			return fmt.Errorf("root %s: the given content has another digest", root.Digest)
		}
		o.root, o.rootRaw = &root, raw
		return nil
	}
}

// WithRewriteURLs rewrites the urls of foreign descriptors by prefix, so a
// network can serve its base layers from its own web server. It changes
// the manifests' digests. Only valid with Keep.
func WithRewriteURLs(rules ...foreign.Rewrite) Option {
	return func(o *options) error { o.rewrites = append(o.rewrites, rules...); return nil }
}

// WithEvents receives progress events. fn is called from several
// goroutines at once and must not block. The default discards them.
func WithEvents(fn func(Event)) Option {
	return func(o *options) error { o.events = fn; return nil }
}

// WithRetries sets how many times one blob transfer is attempted before
// the copy fails. The default is 3.
func WithRetries(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("retries must be at least 1, got %d", n)
		}
		o.retries = n
		return nil
	}
}

// WithRetryDelay waits d between the attempts at a blob instead of the
// default exponential backoff with jitter (each wait drawn between half
// and all of 1s before the second attempt, 2s before the third, doubling
// up to 10s). A Retry-After the registry answered asking for longer still
// takes precedence (up to 60s). d must be positive.
func WithRetryDelay(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("retry delay must be positive, got %s", d)
		}
		o.backoff.Fixed = d
		return nil
	}
}

func makeOptions(opts []Option) (*options, error) {
	o := &options{jobs: 4, retries: 3, events: func(Event) {},
		backoff: wait.Backoff{Base: time.Second, Max: 10 * time.Second}}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	if len(o.rewrites) > 0 && o.foreign != Keep {
		return nil, errors.New("--foreign-rewrite-urls only applies with --foreign keep: include and localize do not keep the urls' role")
	}
	if o.fetcher == nil {
		f, err := foreign.NewFetcher()
		if err != nil {
			return nil, err
		}
		o.fetcher = f
	}
	return o, nil
}
