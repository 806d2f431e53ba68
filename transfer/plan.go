package transfer

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/store"
)

// Planned is what Copy would write for a source, worked out without
// writing anything.
type Planned struct {
	// Source is the manifest or index the source names, and SourceRaw its
	// content when Plan had to fetch it (nil otherwise); give both to
	// WithRoot so that Copy copies exactly what was planned.
	Source    v1.Descriptor
	SourceRaw []byte
	// Written is the manifest or index Copy would tag at the destination:
	// Source itself unless platforms are selected, foreign layers
	// localized or their urls rewritten.
	Written v1.Descriptor
}

// Plan resolves src and works out what Copy with the same options would
// write at the destination's tag, fetching manifests (and, for a single
// image with platforms selected, its config) but no layer. With no
// platform selection, localizing or url rewriting it only resolves src.
func Plan(ctx context.Context, src store.Source, opts ...Option) (*Planned, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	p := &Planned{}
	if o.root != nil {
		p.Source, p.SourceRaw = *o.root, o.rootRaw
	} else if p.Source, err = src.Resolve(ctx); err != nil {
		return nil, err
	}
	if len(o.platforms) == 0 && o.foreign != Localize && len(o.rewrites) == 0 {
		p.Written = p.Source
		return p, nil
	}
	c := &copier{o: o, src: src, res: &Result{}, dry: true}
	o.root = &p.Source
	root, err := c.load(ctx, p.Source, 0)
	if err != nil {
		return nil, err
	}
	p.SourceRaw = root.raw
	if len(o.platforms) > 0 {
		if root, err = c.selectPlatforms(ctx, root); err != nil {
			return nil, err
		}
	}
	if err := c.writeManifests(ctx, root, true); err != nil {
		return nil, err
	}
	p.Written = root.out
	return p, nil
}
