// Package transfer is the copy engine: it walks an index, its manifests and
// their blobs from a store.Source and writes them to a store.Target in
// dependency order (blobs, then each manifest, then the index, then the
// tag), applying the foreign-layer policy, with bounded concurrency, skips
// and cross-repository mounts, and every byte verified while it streams.
package transfer

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/foreign"
	"github.com/ferry-dev/ferry/inspect"
	"github.com/ferry-dev/ferry/mediatype"
	"github.com/ferry-dev/ferry/platform"
	"github.com/ferry-dev/ferry/store"
)

// MaxIndexDepth bounds how deeply indexes may nest.
const MaxIndexDepth = mediatype.MaxIndexDepth

// MaxLayers bounds the layers of one manifest.
const MaxLayers = 1024

// Rewritten records a manifest or index whose digest changed.
type Rewritten struct {
	Old v1.Hash `json:"old"`
	New v1.Hash `json:"new"`
}

// Result summarizes a copy.
type Result struct {
	// Source is the manifest or index the source location named.
	Source v1.Descriptor `json:"source"`
	// Written is the manifest or index written at the destination's tag.
	Written v1.Descriptor `json:"written"`
	// Blob counts by outcome.
	BlobsCopied  int `json:"blobsCopied"`
	BlobsSkipped int `json:"blobsSkipped"`
	BlobsMounted int `json:"blobsMounted"`
	ForeignKept  int `json:"foreignKept"`
	// Bytes is the number of blob bytes transferred.
	Bytes int64 `json:"bytes"`
	// Manifests is the number of manifests and indexes written.
	Manifests int `json:"manifests"`
	// Referrers is the number of referrers copied (WithReferrers).
	Referrers int `json:"referrers,omitempty"`
	// Seconds is the wall time of the copy.
	Seconds float64 `json:"seconds"`
	// Rewritten lists every digest that changed, in write order.
	Rewritten []Rewritten `json:"rewritten,omitempty"`
}

// node is one manifest or index of the tree being copied.
type node struct {
	desc     v1.Descriptor
	raw      []byte
	children []*node // index entries to write
	keep     map[v1.Hash]bool
	blobs    []v1.Descriptor // image: config and layers
	out      v1.Descriptor   // after rewriting
	outRaw   []byte
}

type copier struct {
	o   *options
	src store.Source
	dst store.Target

	mu  sync.Mutex
	res *Result
	dry bool // Plan: compute what would be written, write nothing
}

// Copy copies the image or index src names to dst. When it fails once
// blobs have started to move, it returns with the error the partial
// Result: what was moved (Bytes, the blob counts) before the failure.
func Copy(ctx context.Context, src store.Source, dst store.Target, opts ...Option) (*Result, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	c := &copier{o: o, src: src, dst: dst, res: &Result{}}
	if o.referrers {
		if _, _, err := c.referrerStores(); err != nil {
			return nil, err
		}
	}
	var rootDesc v1.Descriptor
	if o.root != nil {
		rootDesc = *o.root
	} else if rootDesc, err = src.Resolve(ctx); err != nil {
		return nil, err
	}
	c.res.Source = rootDesc
	root, err := c.tree(ctx, rootDesc)
	if err != nil {
		return nil, err
	}
	if _, ok := dst.(store.ImageOnly); ok && root.desc.MediaType.IsIndex() {
		return nil, c.indexRefused(root)
	}
	if err := c.copyBlobs(ctx, root); err != nil {
		return c.res, err
	}
	if err := c.writeManifests(ctx, root, true); err != nil {
		return c.res, err
	}
	if o.referrers {
		if err := c.copyReferrers(ctx, root); err != nil {
			return c.res, err
		}
	}
	c.res.Written = root.out
	if rn, ok := dst.(store.Renamer); ok {
		// As the destination stores it: a tag on a registry resolves to
		// the sha256 digest of a manifest written by its sha512 one.
		c.res.Written.Digest = rn.StoredAs(root.out)
	}
	c.res.Seconds = time.Since(start).Seconds()
	return c.res, nil
}

// indexRefused explains that the target takes one image and which
// platforms the index offers.
func (c *copier) indexRefused(root *node) error {
	var plats []string
	if idx, err := v1.ParseIndexManifest(bytes.NewReader(root.raw)); err == nil {
		for _, d := range idx.Manifests {
			if d.Platform != nil && (root.keep == nil || root.keep[d.Digest]) {
				plats = append(plats, platform.Format(d.Platform))
			}
		}
	}
	return fmt.Errorf("%s holds single-platform images and %s is an index (%s): select one with --platform", store.NameOf(c.dst), store.NameOf(c.src), strings.Join(plats, ", "))
}

// tree loads the manifest or index root and what it lists, narrowed to
// the selected platforms.
func (c *copier) tree(ctx context.Context, root v1.Descriptor) (*node, error) {
	n, err := c.load(ctx, root, 0)
	if err != nil || len(c.o.platforms) == 0 {
		return n, err
	}
	return c.selectPlatforms(ctx, n)
}

// load fetches a manifest or index and, for an index, its entries.
func (c *copier) load(ctx context.Context, desc v1.Descriptor, depth int) (*node, error) {
	if depth > MaxIndexDepth {
		return nil, fmt.Errorf("%s: indexes nested more than %d deep", desc.Digest, MaxIndexDepth)
	}
	raw := c.o.rootRaw
	if depth > 0 || raw == nil {
		var err error
		if raw, err = c.src.FetchManifest(ctx, desc); err != nil {
			return nil, err
		}
	}
	// A negative size would pass as "size unknown" and go unchecked.
	if err := mediatype.CheckSizes(raw); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	n := &node{desc: desc, raw: raw}
	switch {
	case desc.MediaType.IsIndex():
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		for _, e := range idx.Manifests {
			child, err := c.load(ctx, e, depth+1)
			if err != nil {
				return nil, err
			}
			n.children = append(n.children, child)
		}
	case desc.MediaType == types.DockerManifestSchema1 || desc.MediaType == types.DockerManifestSchema1Signed:
		return nil, fmt.Errorf("manifest %s: Docker schema 1 (%s) is not supported; re-push the image with a current client", desc.Digest, desc.MediaType)
	default:
		m, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("manifest %s (%s): %w", desc.Digest, desc.MediaType, err)
		}
		if len(m.Layers) > MaxLayers {
			return nil, fmt.Errorf("manifest %s has %d layers, more than the limit of %d", desc.Digest, len(m.Layers), MaxLayers)
		}
		if m.Config.Digest.Hex != "" {
			n.blobs = append(n.blobs, m.Config)
		}
		n.blobs = append(n.blobs, m.Layers...)
	}
	return n, nil
}

// selectPlatforms narrows the root to the entries the platform specs
// select: one entry becomes the root itself, several a smaller index.
func (c *copier) selectPlatforms(ctx context.Context, root *node) (*node, error) {
	if !root.desc.MediaType.IsIndex() {
		return root, c.checkImagePlatform(ctx, root)
	}
	descs := make([]v1.Descriptor, len(root.children))
	for i, ch := range root.children {
		descs[i] = ch.desc
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(root.raw))
	if err == nil && len(idx.Manifests) == len(descs) {
		descs = idx.Manifests // with their platforms
	}
	sel, err := platform.Select(descs, c.o.platforms)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", store.NameOf(c.src), err)
	}
	if len(sel) == 1 {
		return root.children[sel[0]], nil
	}
	if len(sel) == len(root.children) {
		return root, nil
	}
	keep := map[v1.Hash]bool{}
	var children []*node
	for _, i := range sel {
		keep[root.children[i].desc.Digest] = true
		children = append(children, root.children[i])
	}
	root.children, root.keep = children, keep
	return root, nil
}

// checkImagePlatform refuses a single image whose config matches none of
// the platform specs.
func (c *copier) checkImagePlatform(ctx context.Context, n *node) error {
	if len(n.blobs) == 0 {
		return nil
	}
	raw, err := inspect.ReadConfig(ctx, c.src, n.blobs[0])
	if err != nil {
		return err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("config %s: %w", n.blobs[0].Digest, err)
	}
	p := cfg.Platform()
	if p == nil {
		return nil
	}
	for _, s := range c.o.platforms {
		if s.Matches(*p) {
			return nil
		}
	}
	return fmt.Errorf("%s is a single image for %s, which no --platform selects", store.NameOf(c.src), platform.Format(p))
}

// copyBlobs transfers every blob of the tree, each digest once, with at
// most jobs at a time, largest first.
func (c *copier) copyBlobs(ctx context.Context, root *node) error {
	seen := map[v1.Hash]bool{}
	var all []v1.Descriptor
	var walk func(n *node)
	walk = func(n *node) {
		for _, b := range n.blobs {
			if !seen[b.Digest] {
				seen[b.Digest] = true
				all = append(all, b)
			}
		}
		for _, ch := range n.children {
			walk(ch)
		}
	}
	walk(root)
	// The largest first: the longest transfer starts before the queue of
	// small ones (and, sharing a ledger, before other copies take the
	// streams), so it ends as early as it can.
	slices.SortStableFunc(all, func(a, b v1.Descriptor) int { return cmp.Compare(b.Size, a.Size) })
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.o.jobs)
	for _, d := range all {
		g.Go(func() error { return c.blob(gctx, d) })
	}
	return g.Wait()
}

func (c *copier) count(f func(r *Result)) {
	c.mu.Lock()
	f(c.res)
	c.mu.Unlock()
}

func (c *copier) blob(ctx context.Context, d v1.Descriptor) error {
	ev := Event{Digest: d.Digest, MediaType: string(d.MediaType), Size: d.Size}
	emit := func(k EventKind) { e := ev; e.Kind = k; c.o.events(e) }
	isForeign := mediatype.IsForeign(string(d.MediaType))
	if isForeign && c.o.foreign == Keep {
		c.count(func(r *Result) { r.ForeignKept++ })
		emit(BlobForeignKept)
		return nil
	}
	if c.o.ledger != nil {
		return c.sharedBlob(ctx, d, c.move)
	}
	return c.move(ctx, d)
}

// move brings one blob to the destination: skipped when already there,
// mounted from the source repository when it can be, else copied, with
// retries.
func (c *copier) move(ctx context.Context, d v1.Descriptor) error {
	ev := Event{Digest: d.Digest, MediaType: string(d.MediaType), Size: d.Size}
	emit := func(k EventKind) { e := ev; e.Kind = k; c.o.events(e) }
	isForeign := mediatype.IsForeign(string(d.MediaType))
	has, err := c.dst.HasBlob(ctx, d)
	if err != nil {
		return err
	}
	if has {
		c.count(func(r *Result) { r.BlobsSkipped++ })
		emit(BlobSkipped)
		return nil
	}
	if m, ok := c.dst.(store.Mounter); ok && !isForeign {
		if mounted, err := m.MountBlob(ctx, d, c.src); err == nil && mounted {
			c.count(func(r *Result) { r.BlobsMounted++ })
			emit(BlobMounted)
			return nil
		}
	}
	var lastErr error
	for attempt := 1; attempt <= c.o.retries; attempt++ {
		if attempt > 1 {
			e := ev
			e.Kind, e.Err = BlobRetry, lastErr
			c.o.events(e)
			if err := c.o.backoff.Wait(ctx, attempt-1, lastErr); err != nil {
				return err
			}
		}
		n, err := c.streamBlob(ctx, d)
		if err == nil {
			c.count(func(r *Result) { r.BlobsCopied++; r.Bytes += n })
			emit(BlobCopied)
			return nil
		}
		if !retryable(ctx, err) {
			return err
		}
		lastErr = err
	}
	return lastErr
}

// retryable says whether another attempt at a blob may succeed: not when
// the content is wrong, missing or forbidden, or the copy was cancelled.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	for _, e := range []error{blob.ErrDigestMismatch, blob.ErrUnsupportedAlgorithm, store.ErrNotFound,
		store.ErrUnauthorized, foreign.ErrAllURLsFailed, foreign.ErrURLRefused, context.Canceled} {
		if errors.Is(err, e) {
			return false
		}
	}
	return true
}

// streamBlob is copyBlob in a place of the ledger's bound on streams.
func (c *copier) streamBlob(ctx context.Context, d v1.Descriptor) (int64, error) {
	done, err := c.o.ledger.startMove(ctx, d)
	if err != nil {
		return 0, err
	}
	defer done()
	return c.copyBlob(ctx, d)
}

// copyBlob opens the blob at the source (the registry first; for a
// descriptor with urls, the fetcher when the registry lacks it) and
// streams it to the destination through a verifier.
func (c *copier) copyBlob(ctx context.Context, d v1.Descriptor) (int64, error) {
	opened := c.openUpload(ctx, d)
	rc, source, err := c.open(ctx, d)
	opened()
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	var r io.Reader = rc
	if _, ok := rc.(blob.Verifying); !ok {
		vr, err := blob.NewReader(rc, d.Digest, d.Size, source)
		if err != nil {
			return 0, err
		}
		r = vr
	}
	pr := &progressReader{r: r, emit: c.o.events, ev: Event{Kind: BlobProgress, Digest: d.Digest, MediaType: string(d.MediaType), Size: d.Size, Source: source}}
	start := pr.ev
	start.Kind = BlobStart
	c.o.events(start)
	err = c.dst.PushBlob(ctx, d, pr)
	if pr.err != nil {
		// The source's own failure (a digest mismatch naming the URL) says
		// more than the destination's reaction to it. A bare transport
		// error ("unexpected EOF") gets the blob and source named.
		if !strings.Contains(pr.err.Error(), d.Digest.String()) {
			return pr.n, fmt.Errorf("blob %s from %s: %w", d.Digest, source, pr.err)
		}
		return pr.n, pr.err
	}
	if err != nil {
		return pr.n, err
	}
	if pr.n != d.Size {
		return pr.n, fmt.Errorf("blob %s: destination took %d of %d bytes", d.Digest, pr.n, d.Size)
	}
	return pr.n, nil
}

func (c *copier) open(ctx context.Context, d v1.Descriptor) (io.ReadCloser, string, error) {
	rc, err := c.src.FetchBlob(ctx, d)
	if err == nil {
		return rc, store.NameOf(c.src), nil
	}
	if !errors.Is(err, store.ErrNotFound) || len(d.URLs) == 0 {
		return nil, "", err
	}
	frc, ferr := c.o.fetcher.Open(ctx, d)
	if ferr != nil {
		return nil, "", fmt.Errorf("foreign blob %s is not in %s and could not be fetched from its urls: %w", d.Digest, store.NameOf(c.src), ferr)
	}
	return frc, strings.Join(d.URLs, ", "), nil
}

// openUpload opens d's upload at the destination beside the opening of
// the source, when the destination can open one ahead of the bytes
// (store.UploadOpener), and returns the function that waits for it. A
// failure is left to PushBlob, which then opens its own.
func (c *copier) openUpload(ctx context.Context, d v1.Descriptor) (wait func()) {
	o, ok := c.dst.(store.UploadOpener)
	if !ok {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = o.OpenUpload(ctx, d)
	}()
	return func() { <-done }
}

type progressReader struct {
	r    io.Reader
	n    int64
	err  error
	ev   Event
	emit func(Event)
}

// VerifiedBy implements blob.Passthrough: the progress counter passes on
// the verifying reader's bytes unchanged.
func (p *progressReader) VerifiedBy() *blob.Reader {
	if pt, ok := p.r.(blob.Passthrough); ok {
		return pt.VerifiedBy()
	}
	return nil
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) && p.err == nil {
		p.err = err
	}
	if n > 0 {
		e := p.ev
		e.Done = p.n
		p.emit(e)
	}
	return n, err
}

// writeManifests writes a node's children, then the node: by digest for
// inner nodes, under the tag for the root.
func (c *copier) writeManifests(ctx context.Context, n *node, isRoot bool) error {
	repl := map[v1.Hash]v1.Descriptor{}
	for _, ch := range n.children {
		if err := c.writeManifests(ctx, ch, false); err != nil {
			return err
		}
		repl[ch.desc.Digest] = ch.out
	}
	var err error
	n.outRaw, n.out = n.raw, n.desc
	changed := false
	switch {
	case n.desc.MediaType.IsIndex():
		n.outRaw, changed, err = rewriteIndex(n.raw, repl, n.keep)
	case c.o.foreign == Localize:
		n.outRaw, changed, err = localizeManifest(n.raw, string(n.desc.MediaType))
	case len(c.o.rewrites) > 0:
		n.outRaw, changed, err = rewriteLayers(n.raw, rewriteURLs(c.o.rewrites))
	}
	if err != nil {
		return fmt.Errorf("rewrite %s: %w", n.desc.Digest, err)
	}
	if changed {
		n.out = blob.DescriptorOf(n.outRaw, n.desc.MediaType)
		n.out.Platform, n.out.Annotations = n.desc.Platform, n.desc.Annotations
	}
	if c.dry {
		return nil
	}
	if changed {
		c.count(func(r *Result) { r.Rewritten = append(r.Rewritten, Rewritten{Old: n.desc.Digest, New: n.out.Digest}) })
		c.o.events(Event{Kind: DigestRewritten, Old: n.desc.Digest, Digest: n.out.Digest, MediaType: string(n.desc.MediaType)})
	}
	if isRoot {
		err = c.dst.Tag(ctx, n.out, n.outRaw)
	} else {
		err = c.dst.PushManifest(ctx, n.out, n.outRaw)
	}
	if err != nil {
		return c.explainRefusal(n, err)
	}
	c.count(func(r *Result) { r.Manifests++ })
	c.o.events(Event{Kind: ManifestWritten, Digest: n.out.Digest, MediaType: string(n.out.MediaType), Size: n.out.Size})
	return nil
}

// explainRefusal turns a registry's refusal of a manifest with foreign
// layers into words naming the URLs, wrapping store.ErrForeignRefused.
func (c *copier) explainRefusal(n *node, err error) error {
	var foreignURLs []string
	if !n.desc.MediaType.IsIndex() {
		var m struct {
			Layers []v1.Descriptor `json:"layers"`
		}
		if json.Unmarshal(n.outRaw, &m) == nil {
			for _, l := range m.Layers {
				if mediatype.IsForeign(string(l.MediaType)) {
					foreignURLs = append(foreignURLs, l.URLs...)
				}
			}
		}
	}
	if len(foreignURLs) == 0 || !errors.Is(err, store.ErrManifestRefused) {
		return err
	}
	// What to do about it (copy's --foreign, the registry's allow list)
	// is the caller's advice: the engine knows no flags.
	return fmt.Errorf("%w: the destination refused manifest %s, whose foreign layers point at %s. Registry said: %v",
		store.ErrForeignRefused, n.desc.Digest, strings.Join(foreignURLs, ", "), err)
}
