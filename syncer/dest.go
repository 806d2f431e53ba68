package syncer

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/bundle"
	"github.com/ferry-dev/ferry/location"
	"github.com/ferry-dev/ferry/opener"
	"github.com/ferry-dev/ferry/store"
)

// destination is where a run writes: a registry prefix (each image under
// its full repository path), one bundle file, or one OCI layout (each
// image named by its full source reference).
type destination struct {
	raw    string
	kind   location.Kind
	prefix string // registry: HOST[/PREFIX]
	dir    string // layout directory or bundle file

	writer *bundle.Writer
}

// parseDestination reads DEST: oci-archive:FILE, oci:DIR or HOST[/PREFIX].
func parseDestination(raw string, insecure bool) (*destination, error) {
	d := &destination{raw: raw}
	switch {
	case strings.HasPrefix(raw, "oci-archive:"):
		d.kind, d.dir = location.OCIArchive, strings.TrimPrefix(raw, "oci-archive:")
	case strings.HasPrefix(raw, "oci:"):
		d.kind, d.dir = location.OCILayout, strings.TrimPrefix(raw, "oci:")
	default:
		opts := []name.Option{name.StrictValidation}
		if insecure {
			opts = append(opts, name.Insecure)
		}
		s := strings.TrimSuffix(strings.TrimPrefix(raw, "docker://"), "/")
		// A bare HOST:PORT is no repository; check the prefix with a
		// repository under it.
		if _, err := name.NewRepository(s+"/x", opts...); err != nil || strings.ContainsAny(s, "@") {
			return nil, fmt.Errorf("%w: %s: not a destination: want HOST[/PREFIX], oci-archive:FILE or oci:DIR", location.ErrInvalid, raw)
		}
		d.kind, d.prefix = location.Registry, s
	}
	if d.Local() && d.dir == "" {
		return nil, fmt.Errorf("%w: %s: a path is missing", location.ErrInvalid, raw)
	}
	return d, nil
}

// Local says whether the destination is a file or directory (foreign
// layers are then included by default, as copy does).
func (d *destination) Local() bool { return d.kind != location.Registry }

// name is where src (a full source reference) lands, as the user reads it.
func (d *destination) name(src name.Reference) string {
	switch d.kind {
	case location.Registry:
		repo := path.Join(d.prefix, src.Context().RepositoryStr())
		return repo + sep(src) + src.Identifier()
	case location.OCIArchive:
		return "oci-archive:" + d.dir + ":" + src.Name()
	}
	return "oci:" + d.dir + ":" + src.Name()
}

// sep is ":" before a tag, "@" before a digest.
func sep(r name.Reference) string {
	if _, ok := r.(name.Digest); ok {
		return "@"
	}
	return ":"
}

// target opens where src lands, for copying from source; for a registry
// or layout it also returns what is there now (zero when nothing is).
func (d *destination) target(ctx context.Context, o *opener.Opener, src name.Reference, from store.Source) (store.Target, v1.Descriptor, error) {
	switch d.kind {
	case location.OCIArchive:
		return d.writer.Target(src), v1.Descriptor{}, nil
	case location.OCILayout:
		// The layout serializes the index.json updates of the targets
		// (one per image) itself, and records referrers (store.Referrers).
		l, err := o.Target(ctx, location.Location{Kind: location.OCILayout, Raw: d.name(src), Path: d.dir, Tag: src.Name()}, nil)
		if err != nil {
			return nil, v1.Descriptor{}, err
		}
		return l, current(ctx, l), nil
	}
	loc, err := o.Network().Parse(d.name(src))
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	t, err := o.Target(ctx, loc, from)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	return t, current(ctx, t), nil
}

// current is what the target's tag names now; zero when it names
// nothing or the target cannot say.
func current(ctx context.Context, t store.Target) v1.Descriptor {
	s, ok := t.(store.Source)
	if !ok {
		return v1.Descriptor{}
	}
	desc, err := s.Resolve(ctx)
	if err != nil {
		return v1.Descriptor{}
	}
	return desc
}

// open prepares the destination for writing (a bundle file).
func (d *destination) open() error {
	if d.kind != location.OCIArchive {
		return nil
	}
	w, err := bundle.NewWriter(d.dir)
	if err != nil {
		return err
	}
	d.writer = w
	return nil
}

// finish completes the destination: a bundle is written when any image
// went into it, and discarded otherwise.
func (d *destination) finish(anyWritten bool) error {
	if d.writer == nil {
		return nil
	}
	if !anyWritten {
		d.writer.Abort()
		return nil
	}
	return d.writer.Close()
}

// interrupted is the error of a run that err (ctx.Err()) ended, with
// what it did and, for a bundle, that the file was not written.
func (d *destination) interrupted(err error, rep *Report) error {
	t := rep.Totals
	msg := fmt.Sprintf("%d of %d images synced", t.Copied+t.Skipped, t.Images)
	switch {
	case rep.DryRun:
		msg = "dry run"
	case d.kind == location.OCIArchive:
		msg = d.dir + " was not written"
	}
	return fmt.Errorf("interrupted: %w (%s)", err, msg)
}
