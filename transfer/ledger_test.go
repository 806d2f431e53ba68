package transfer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/store"
)

// memSource serves one manifest (root) and the blobs it holds.
type memSource struct {
	root  v1.Descriptor
	raw   []byte
	blobs map[v1.Hash][]byte
}

func (s *memSource) Resolve(context.Context) (v1.Descriptor, error) { return s.root, nil }
func (s *memSource) FetchManifest(context.Context, v1.Descriptor) ([]byte, error) {
	return s.raw, nil
}
func (s *memSource) FetchBlob(_ context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	b, ok := s.blobs[d.Digest]
	if !ok {
		return nil, store.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}
func (s *memSource) Close() error { return nil }

// streamCounter is one destination shared by several copies that counts
// the blob pushes streaming at once; a push of slow waits for release,
// the others take a few milliseconds.
type streamCounter struct {
	mu          sync.Mutex
	has         map[v1.Hash]bool
	now, most   int
	slow        v1.Hash
	release     chan struct{}
	pushedOther int
}

func (c *streamCounter) HasBlob(_ context.Context, d v1.Descriptor) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.has[d.Digest], nil
}

func (c *streamCounter) PushBlob(ctx context.Context, d v1.Descriptor, r io.Reader) error {
	c.mu.Lock()
	c.now++
	c.most = max(c.most, c.now)
	c.mu.Unlock()
	defer func() { c.mu.Lock(); c.now--; c.mu.Unlock() }()
	if d.Digest == c.slow {
		select {
		case <-c.release:
		case <-time.After(5 * time.Second):
			return fmt.Errorf("the other blobs did not move while %s streamed", d.Digest)
		}
	} else {
		time.Sleep(5 * time.Millisecond) // long enough for pushes to overlap
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.has[d.Digest] = true
	if d.Digest != c.slow {
		c.pushedOther++
	}
	return nil
}

func (c *streamCounter) PushManifest(context.Context, v1.Descriptor, []byte) error { return nil }
func (c *streamCounter) Tag(context.Context, v1.Descriptor, []byte) error          { return nil }
func (c *streamCounter) Close() error                                              { return nil }

// TestLedgerLimitMovesBoundsStreamsAndWaitersHoldNone copies six images
// sharing one blob, each with one of its own, through a ledger limited to
// two streams: never more than two blobs stream at once, and while the
// shared blob streams (until the others have all moved) the images
// waiting for it hold no place, so their own blobs move through the
// other.
func TestLedgerLimitMovesBoundsStreamsAndWaitersHoldNone(t *testing.T) {
	shared := []byte("the shared base layer")
	sharedDesc := blob.DescriptorOf(shared, types.OCILayer)
	const images = 6
	dst := &streamCounter{has: map[v1.Hash]bool{}, slow: sharedDesc.Digest, release: make(chan struct{})}
	var srcs []*memSource
	for i := range images {
		own := []byte(fmt.Sprintf("layer of image %d", i))
		ownDesc := blob.DescriptorOf(own, types.OCILayer)
		cfg := []byte(fmt.Sprintf(`{"image":%d}`, i))
		cfgDesc := blob.DescriptorOf(cfg, types.OCIConfigJSON)
		raw, err := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cfgDesc, Layers: []v1.Descriptor{sharedDesc, ownDesc}})
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, &memSource{root: blob.DescriptorOf(raw, types.OCIManifestSchema1), raw: raw,
			blobs: map[v1.Hash][]byte{sharedDesc.Digest: shared, ownDesc.Digest: own, cfgDesc.Digest: cfg}})
	}
	go func() {
		// The shared blob ends once the 12 others (configs and own
		// layers) have moved.
		for {
			dst.mu.Lock()
			n := dst.pushedOther
			dst.mu.Unlock()
			if n == 2*images {
				close(dst.release)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	ledger := NewLedger().LimitMoves(2)
	var g errgroup.Group
	for _, src := range srcs {
		g.Go(func() error {
			_, err := Copy(context.Background(), src, dst, WithLedger(ledger))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if dst.most > 2 {
		t.Errorf("%d blobs streamed at once, want at most 2", dst.most)
	}
	if !dst.has[sharedDesc.Digest] || dst.pushedOther != 2*images {
		t.Errorf("shared blob pushed: %v; other blobs pushed: %d, want %d", dst.has[sharedDesc.Digest], dst.pushedOther, 2*images)
	}
}

// orderTarget records the order blobs are pushed in.
type orderTarget struct {
	mu     sync.Mutex
	pushed []v1.Hash
}

func (o *orderTarget) HasBlob(context.Context, v1.Descriptor) (bool, error) { return false, nil }
func (o *orderTarget) PushBlob(_ context.Context, d v1.Descriptor, r io.Reader) error {
	o.mu.Lock()
	o.pushed = append(o.pushed, d.Digest)
	o.mu.Unlock()
	_, err := io.Copy(io.Discard, r)
	return err
}
func (o *orderTarget) PushManifest(context.Context, v1.Descriptor, []byte) error { return nil }
func (o *orderTarget) Tag(context.Context, v1.Descriptor, []byte) error          { return nil }
func (o *orderTarget) Close() error                                              { return nil }

// TestCopyMovesLargestBlobFirst: with one job, the blobs go largest first
// (the base layer listed first in the manifest is not the largest here),
// so that the longest transfer is never queued behind small ones.
func TestCopyMovesLargestBlobFirst(t *testing.T) {
	src := &memSource{blobs: map[v1.Hash][]byte{}}
	var layers []v1.Descriptor
	for _, n := range []int{10, 300, 20, 200} {
		b := bytes.Repeat([]byte{byte(n)}, n)
		d := blob.DescriptorOf(b, types.OCILayer)
		src.blobs[d.Digest] = b
		layers = append(layers, d)
	}
	cfg := []byte(`{}`)
	cfgDesc := blob.DescriptorOf(cfg, types.OCIConfigJSON)
	src.blobs[cfgDesc.Digest] = cfg
	raw, err := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cfgDesc, Layers: layers})
	if err != nil {
		t.Fatal(err)
	}
	src.root, src.raw = blob.DescriptorOf(raw, types.OCIManifestSchema1), raw
	dst := &orderTarget{}
	if _, err := Copy(context.Background(), src, dst, WithJobs(1)); err != nil {
		t.Fatal(err)
	}
	want := []v1.Hash{layers[1].Digest, layers[3].Digest, layers[2].Digest, layers[0].Digest, cfgDesc.Digest}
	if !slices.Equal(dst.pushed, want) {
		t.Errorf("pushed %v, want largest first %v", dst.pushed, want)
	}
}

// TestLedgerPlacesGoToTheLargestClaimedFirst: with places free, a blob
// does not start streaming while a larger blob claimed in the run has not
// started yet; it starts once that one streams, or once that one is
// settled without streaming (found at the destination, mounted, failed).
func TestLedgerPlacesGoToTheLargestClaimedFirst(t *testing.T) {
	ctx := context.Background()
	desc := func(s string, size int64) v1.Descriptor {
		d := blob.DescriptorOf([]byte(s), types.OCILayer)
		d.Size = size
		return d
	}
	l := NewLedger().LimitMoves(4)
	starts := func(d v1.Descriptor) <-chan func() {
		ch := make(chan func(), 1)
		go func() {
			done, err := l.startMove(ctx, d)
			if err != nil {
				t.Error(err)
				return
			}
			ch <- done
		}()
		return ch
	}
	waitStart := func(what string, ch <-chan func()) func() {
		t.Helper()
		select {
		case done := <-ch:
			return done
		case <-time.After(5 * time.Second):
			t.Fatalf("%s did not start", what)
			return nil
		}
	}
	notStarted := func(what string, ch <-chan func()) {
		t.Helper()
		select {
		case <-ch:
			t.Fatalf("%s started while a larger claimed blob had not", what)
		case <-time.After(50 * time.Millisecond):
		}
	}

	big, small := desc("big", 1000), desc("small", 10)
	bigEntry, _ := l.claim(big)
	smallEntry, _ := l.claim(small)
	smallStarts := starts(small)
	notStarted("the small blob", smallStarts)
	doneBig := waitStart("the big blob", starts(big))
	doneSmall := waitStart("the small blob, once the big one streams", smallStarts)
	doneBig()
	doneSmall()
	l.settle(big.Digest, bigEntry, nil, nil)
	l.settle(small.Digest, smallEntry, nil, nil)

	// A larger blob settled without streaming (it was at the destination
	// already) lets the smaller ones go.
	big2, small2 := desc("big2", 1000), desc("small2", 10)
	big2Entry, _ := l.claim(big2)
	small2Starts := starts(small2)
	notStarted("the second small blob", small2Starts)
	l.settle(big2.Digest, big2Entry, nil, nil)
	waitStart("the second small blob, once the big one was settled", small2Starts)()

	// No bound, no order: a plain copy's ledger.
	free := NewLedger()
	free.claim(desc("big3", 1000))
	done, err := free.startMove(ctx, desc("small3", 10))
	if err != nil {
		t.Fatal(err)
	}
	done()
}

// openingTarget is a target that can open uploads ahead of the bytes;
// opened is closed at the first OpenUpload.
type openingTarget struct {
	orderTarget
	once   sync.Once
	opened chan struct{}
}

func (o *openingTarget) OpenUpload(context.Context, v1.Descriptor) error {
	o.once.Do(func() { close(o.opened) })
	return nil
}

// waitingSource answers for a blob only once the destination has been
// asked to open its upload.
type waitingSource struct {
	*memSource
	opened <-chan struct{}
}

func (s waitingSource) FetchBlob(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	select {
	case <-s.opened:
		return s.memSource.FetchBlob(ctx, d)
	case <-time.After(5 * time.Second):
		return nil, fmt.Errorf("blob %s: the destination's upload was not opened while the source was opening", d.Digest)
	}
}

// TestCopyOpensUploadBesideSource: a destination that can open an upload
// ahead of the bytes (a registry's POST) is asked to while the source is
// still opening the blob, not after: one round trip fewer per blob.
func TestCopyOpensUploadBesideSource(t *testing.T) {
	layer := []byte("a layer")
	ld := blob.DescriptorOf(layer, types.OCILayer)
	cfg := []byte(`{}`)
	cd := blob.DescriptorOf(cfg, types.OCIConfigJSON)
	raw, err := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cd, Layers: []v1.Descriptor{ld}})
	if err != nil {
		t.Fatal(err)
	}
	dst := &openingTarget{opened: make(chan struct{})}
	src := waitingSource{&memSource{root: blob.DescriptorOf(raw, types.OCIManifestSchema1), raw: raw,
		blobs: map[v1.Hash][]byte{ld.Digest: layer, cd.Digest: cfg}}, dst.opened}
	if _, err := Copy(context.Background(), src, dst, WithRetries(1)); err != nil {
		t.Fatal(err)
	}
	if len(dst.pushed) != 2 {
		t.Errorf("pushed %v, want the layer and the config", dst.pushed)
	}
}
