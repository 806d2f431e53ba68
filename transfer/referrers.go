package transfer

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/store"
)

// MaxReferrerDepth bounds how deep referrers of referrers are followed
// (a signature of an SBOM of an image is depth 2).
const MaxReferrerDepth = 4

// WithReferrers also copies the referrers of every manifest and index
// copied — signatures, SBOMs, attestations: manifests whose subject is
// one of them — and, recursively, their referrers. They are listed
// through the source's referrers API, or the referrers tag schema
// (sha256-<hex>) where it has none, or, in an OCI layout, by scanning
// index.json; a registry destination without the API gets them recorded
// under that tag schema, an OCI layout as untagged index.json entries
// (store.Referrers). Both stores must be registries or OCI layouts; Copy
// fails before anything moves when one is not.
// Referrers of a manifest whose digest the copy changed (localize, url
// rewrites) are not copied: they refer to the original digest. The
// default copies no referrers.
func WithReferrers() Option {
	return func(o *options) error { o.referrers = true; return nil }
}

// byDigest is a target whose root is stored by digest, untagged: how a
// referrer is written.
type byDigest struct{ store.Target }

func (t byDigest) Tag(ctx context.Context, desc v1.Descriptor, raw []byte) error {
	return t.PushManifest(ctx, desc, raw)
}

// MountBlob passes mounts through to the target.
func (t byDigest) MountBlob(ctx context.Context, desc v1.Descriptor, src store.Source) (bool, error) {
	if m, ok := t.Target.(store.Mounter); ok {
		return m.MountBlob(ctx, desc, src)
	}
	return false, nil
}

// ErrCannotRecordReferrers follows the name of a destination that
// cannot record referrers (an archive) in the error of a copy with
// WithReferrers, which fails before anything moves.
var ErrCannotRecordReferrers = errors.New("cannot record referrers: --referrers needs a registry or an OCI layout destination")

// referrerStores are the source, to list referrers, and the destination,
// to record them; the error says which of them cannot. Copy asks before
// anything moves.
func (c *copier) referrerStores() (from, to store.Referrers, err error) {
	from, ok := c.src.(store.Referrers)
	if !ok {
		return nil, nil, fmt.Errorf("%s cannot list referrers: --referrers needs a registry or an OCI layout source", store.NameOf(c.src))
	}
	to, ok = c.dst.(store.Referrers)
	if !ok {
		return nil, nil, fmt.Errorf("%s %w", store.NameOf(c.dst), ErrCannotRecordReferrers)
	}
	return from, to, nil
}

// copyReferrers copies the referrers of the tree's unchanged manifests,
// breadth first, each once.
func (c *copier) copyReferrers(ctx context.Context, root *node) error {
	from, to, err := c.referrerStores()
	if err != nil {
		return err
	}
	var subjects []v1.Descriptor
	var walk func(n *node)
	walk = func(n *node) {
		if n.out.Digest == n.desc.Digest {
			subjects = append(subjects, n.desc)
		}
		for _, ch := range n.children {
			walk(ch)
		}
	}
	walk(root)
	o := *c.o
	o.platforms, o.root, o.rootRaw = nil, nil, nil
	sub := &copier{o: &o, src: c.src, dst: byDigest{c.dst}, res: c.res}
	seen := map[v1.Hash]bool{}
	for depth := 1; len(subjects) > 0; depth++ {
		if depth > MaxReferrerDepth {
			return fmt.Errorf("referrers nested more than %d deep under %s", MaxReferrerDepth, root.desc.Digest)
		}
		var next []v1.Descriptor
		for _, subject := range subjects {
			refs, err := from.Referrers(ctx, subject)
			if err != nil {
				return err
			}
			for _, ref := range refs {
				if seen[ref.Digest] {
					continue
				}
				seen[ref.Digest] = true
				n, err := sub.load(ctx, ref, 0)
				if err != nil {
					return fmt.Errorf("referrer %s of %s: %w", ref.Digest, subject.Digest, err)
				}
				if err := sub.copyBlobs(ctx, n); err != nil {
					return fmt.Errorf("referrer %s of %s: %w", ref.Digest, subject.Digest, err)
				}
				if err := sub.writeManifests(ctx, n, true); err != nil {
					return fmt.Errorf("referrer %s of %s: %w", ref.Digest, subject.Digest, err)
				}
				if err := to.AddReferrer(ctx, subject, ref); err != nil {
					return err
				}
				c.count(func(r *Result) { r.Referrers++ })
				next = append(next, ref)
			}
		}
		subjects = next
	}
	return nil
}

// CopyReferrers copies only the referrers (see WithReferrers) of the
// manifest or index root, which dst already holds as the copy with the
// same options would write it: how a sync brings new signatures of an
// image that is otherwise up to date. It fetches manifests, not layers.
func CopyReferrers(ctx context.Context, src store.Source, dst store.Target, root v1.Descriptor, opts ...Option) (*Result, error) {
	o, err := makeOptions(append(opts, WithReferrers()))
	if err != nil {
		return nil, err
	}
	c := &copier{o: o, src: src, dst: dst, res: &Result{Source: root, Written: root}, dry: true}
	n, err := c.tree(ctx, root)
	if err != nil {
		return nil, err
	}
	if err := c.writeManifests(ctx, n, true); err != nil { // dry: works out n.out
		return nil, err
	}
	c.dry = false
	if err := c.copyReferrers(ctx, n); err != nil {
		return nil, err
	}
	return c.res, nil
}
