package transfer

import (
	"context"
	"errors"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/foreign"
	"github.com/ferry-dev/ferry/mediatype"
	"github.com/ferry-dev/ferry/store"
)

// Blobs copies individual blobs — the layers and configs of a manifest
// that is built elsewhere (imagemod) — under the same rules as Copy:
// the foreign policy, skips, cross-repository mounts, retries, verified
// streams and progress events. Make one with NewBlobs; it is safe for
// concurrent use.
type Blobs struct {
	o *options
}

// NewBlobs returns a Blobs applying opts. WithPlatforms does not apply to
// single blobs and is refused.
func NewBlobs(opts ...Option) (*Blobs, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	if len(o.platforms) > 0 {
		return nil, errors.New("platform selection does not apply to copying single blobs")
	}
	return &Blobs{o: o}, nil
}

// Fetcher returns the fetcher used for foreign blobs.
func (b *Blobs) Fetcher() *foreign.Fetcher { return b.o.fetcher }

// Descriptor returns the descriptor a manifest of type manifestType
// written at the destination lists for d: d itself, except that Localize
// turns a foreign descriptor into its distributable counterpart in the
// manifest's own schema (mediatype.Localized) without urls, and URL
// rewrites (with Keep) apply to a foreign descriptor's urls. The input is
// not modified.
func (b *Blobs) Descriptor(d v1.Descriptor, manifestType types.MediaType) v1.Descriptor {
	if !mediatype.IsForeign(string(d.MediaType)) {
		return d
	}
	switch {
	case b.o.foreign == Localize:
		if to, ok := mediatype.Localized(string(d.MediaType), string(manifestType)); ok {
			d.MediaType = types.MediaType(to)
			d.URLs = nil
		}
	case len(b.o.rewrites) > 0:
		d.URLs = foreign.RewriteURLs(d.URLs, b.o.rewrites)
	}
	return d
}

// Copy copies descs (each digest once, at most WithJobs at a time) from src
// to dst: a foreign blob is left at its urls under Keep and fetched (from
// src, else its urls) otherwise; a blob dst holds is skipped; a blob in
// another repository of the same registry is mounted when dst is a
// store.Mounter. Every byte copied is verified against its descriptor.
// The Result counts the outcomes; Source, Written and Manifests stay zero.
func (b *Blobs) Copy(ctx context.Context, src store.Source, dst store.Target, descs []v1.Descriptor) (*Result, error) {
	start := time.Now()
	c := &copier{o: b.o, src: src, dst: dst, res: &Result{}}
	if err := c.copyBlobs(ctx, &node{blobs: descs}); err != nil {
		return nil, err
	}
	c.res.Seconds = time.Since(start).Seconds()
	return c.res, nil
}

// Add adds the blob counts, bytes and seconds of o to r.
func (r *Result) Add(o *Result) {
	if o == nil {
		return
	}
	r.BlobsCopied += o.BlobsCopied
	r.BlobsSkipped += o.BlobsSkipped
	r.BlobsMounted += o.BlobsMounted
	r.ForeignKept += o.ForeignKept
	r.Bytes += o.Bytes
	r.Manifests += o.Manifests
	r.Seconds += o.Seconds
}

// EncodeJSON encodes v the way the copy engine writes manifests it
// rewrites: compactly, without HTML escaping (URLs keep their '&'), and
// without a trailing newline.
func EncodeJSON(v any) ([]byte, error) { return marshal(v) }
