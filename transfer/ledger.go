package transfer

import (
	"context"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/store"
)

// Ledger remembers, across the copies of one run, which destination
// holds each blob, so that many copies into one registry (or one
// archive) move every blob at most once: a copy that needs a blob another
// copy is moving waits for it, then mounts it from the destination
// repository that now holds it (or finds it already there) instead of
// fetching it from the source again. It is safe for concurrent use; the
// zero value is not, use NewLedger.
//
// The holders are the copies' targets: the caller keeps them open (not
// closed) until every copy sharing the ledger is done.
type Ledger struct {
	mu sync.Mutex
	m  map[v1.Hash]*ledgerEntry

	// The bound on streams (LimitMoves): places, how many are taken, the
	// blobs claimed and not yet streaming (their sizes), and a channel
	// closed and replaced when a place frees or a claimed blob starts.
	places    int // 0: no bound
	streaming int
	pending   map[v1.Hash]int64
	changed   chan struct{}
}

type ledgerEntry struct {
	done    chan struct{}
	err     error
	holders []store.Target
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger { return &Ledger{m: map[v1.Hash]*ledgerEntry{}} }

// LimitMoves bounds how many blobs the copies sharing l stream at once,
// all together, to n: a copy holds a place only while a blob's bytes
// stream, not while it skips or mounts a blob or waits for a blob another
// copy is moving. So many copies can run at once, those waiting for a
// shared blob holding no place, and the bytes in flight stay bounded.
//
// The places go to the largest blobs first, across the copies: a blob
// starts streaming only when no larger blob claimed in the run is still
// waiting to start its first stream. Each copy already starts its
// largest blob first; this makes the whole run do so, so that the
// shared base layers (the longest transfers, which every image waits
// for) do not queue behind the many small configs and layers of the
// other images, at the source, at the stream places and at the
// destination's upload endpoint. A blob retried after a failed stream
// has no priority.
//
// It returns l; call it before the ledger is shared. n < 1 removes the
// bound (the default: each copy's WithJobs is the only one).
func (l *Ledger) LimitMoves(n int) *Ledger {
	l.places, l.pending, l.changed = 0, nil, nil
	if n > 0 {
		l.places, l.pending, l.changed = n, map[v1.Hash]int64{}, make(chan struct{})
	}
	return l
}

// startMove takes a place for the stream of blob d (see LimitMoves) and
// returns the function that gives it back; l may be nil.
func (l *Ledger) startMove(ctx context.Context, d v1.Descriptor) (func(), error) {
	if l == nil || l.places == 0 {
		return func() {}, nil
	}
	for {
		l.mu.Lock()
		if l.streaming < l.places && !l.largerPending(d) {
			l.streaming++
			if _, ok := l.pending[d.Digest]; ok {
				delete(l.pending, d.Digest)
				l.wakeLocked()
			}
			l.mu.Unlock()
			return func() {
				l.mu.Lock()
				l.streaming--
				l.wakeLocked()
				l.mu.Unlock()
			}, nil
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// largerPending says whether a blob larger than d was claimed and has not
// started streaming yet. l.mu is held.
func (l *Ledger) largerPending(d v1.Descriptor) bool {
	for h, size := range l.pending {
		if size > d.Size && h != d.Digest {
			return true
		}
	}
	return false
}

// wakeLocked wakes the streams waiting for a place. l.mu is held.
func (l *Ledger) wakeLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// WithLedger shares blob transfers with the other copies given the same
// ledger (see Ledger). The default shares nothing.
func WithLedger(l *Ledger) Option {
	return func(o *options) error { o.ledger = l; return nil }
}

// claim returns the entry for d and whether the caller owns it (must move
// the blob and call settle); otherwise the entry is another copy's, to
// wait for.
func (l *Ledger) claim(d v1.Descriptor) (*ledgerEntry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.m[d.Digest]; ok {
		return e, false
	}
	e := &ledgerEntry{done: make(chan struct{})}
	l.m[d.Digest] = e
	if l.pending != nil {
		l.pending[d.Digest] = d.Size
	}
	return e, true
}

// settle ends the owner's move of d: on success dst holds it; on failure
// the entry is dropped, so that a waiting copy tries on its own.
func (l *Ledger) settle(d v1.Hash, e *ledgerEntry, dst store.Target, err error) {
	l.mu.Lock()
	if _, ok := l.pending[d]; ok {
		delete(l.pending, d) // skipped, mounted or failed before streaming
		l.wakeLocked()
	}
	if err != nil {
		delete(l.m, d)
		e.err = err
	} else {
		e.holders = append(e.holders, dst)
	}
	l.mu.Unlock()
	close(e.done)
}

// holders returns the targets that hold the blob of e.
func (l *Ledger) holders(e *ledgerEntry) []store.Target {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]store.Target(nil), e.holders...)
}

// add records that dst holds the blob of e too.
func (l *Ledger) add(e *ledgerEntry, dst store.Target) {
	l.mu.Lock()
	e.holders = append(e.holders, dst)
	l.mu.Unlock()
}

// sharedBlob moves d through the ledger: the first copy to need it moves
// it (move); the others wait, then find it at their destination or mount
// it from a holder, and move it themselves only when neither works.
func (c *copier) sharedBlob(ctx context.Context, d v1.Descriptor, move func(context.Context, v1.Descriptor) error) error {
	l := c.o.ledger
	for {
		e, owner := l.claim(d)
		if owner {
			err := move(ctx, d)
			l.settle(d.Digest, e, c.dst, err)
			return err
		}
		select {
		case <-e.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if e.err != nil {
			continue // the owner failed: try again, perhaps as the owner
		}
		holders := l.holders(e)
		ok, err := c.reuse(ctx, d, holders)
		if err != nil {
			return err
		}
		if !ok && !c.copyFromHolder(ctx, d, holders) {
			if err := move(ctx, d); err != nil {
				return err
			}
		}
		l.add(e, c.dst)
		return nil
	}
}

// reuse finds d already at the destination, or mounts it from one of
// holders, the destinations that received it earlier in the run.
func (c *copier) reuse(ctx context.Context, d v1.Descriptor, holders []store.Target) (bool, error) {
	ev := Event{Digest: d.Digest, MediaType: string(d.MediaType), Size: d.Size}
	has, err := c.dst.HasBlob(ctx, d)
	if err != nil {
		return false, err
	}
	if has {
		c.count(func(r *Result) { r.BlobsSkipped++ })
		ev.Kind = BlobSkipped
		c.o.events(ev)
		return true, nil
	}
	m, ok := c.dst.(store.Mounter)
	if !ok {
		return false, nil
	}
	for _, h := range holders {
		src, ok := h.(store.Source)
		if !ok || h == c.dst {
			continue
		}
		if mounted, err := m.MountBlob(ctx, d, src); err == nil && mounted {
			c.count(func(r *Result) { r.BlobsMounted++ })
			ev.Kind = BlobMounted
			c.o.events(ev)
			return true, nil
		}
	}
	return false, nil
}

// copyFromHolder copies d from a destination that received it earlier in
// the run, when that destination can be read (a registry that declined
// the mount: token scopes, another project): the bytes then cross the
// destination's network, not the source's, again. It reports whether it
// succeeded; on failure the caller moves the blob from the source.
func (c *copier) copyFromHolder(ctx context.Context, d v1.Descriptor, holders []store.Target) bool {
	for _, h := range holders {
		src, ok := h.(store.Source)
		if !ok || h == c.dst {
			continue
		}
		sub := &copier{o: c.o, src: src, dst: c.dst, res: &Result{}}
		if err := sub.move(ctx, d); err != nil {
			continue
		}
		c.count(func(r *Result) {
			r.BlobsCopied += sub.res.BlobsCopied
			r.BlobsSkipped += sub.res.BlobsSkipped
			r.BlobsMounted += sub.res.BlobsMounted
			r.Bytes += sub.res.Bytes
		})
		return true
	}
	return false
}
