package server

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// TestFlightsFailedDownloadIsNotJoined: a request that comes after a
// download has failed, while it is still cleaning up (its storage
// writer draining), starts a download of its own instead of sharing the
// failure; the failed one's end leaves the new one in place.
func TestFlightsFailedDownloadIsNotJoined(t *testing.T) {
	var fs flights
	old, leader := fs.join("repo@sha256:x")
	if !leader {
		t.Fatal("the first request does not start the download")
	}
	old.update(func() { old.released, old.err = true, errUnreachable }) // as copyBlob's failure
	f, leader := fs.join("repo@sha256:x")
	if !leader || f == old {
		t.Fatal("a request after the download failed joined it")
	}
	fs.end("repo@sha256:x", old, errors.New("failed"))
	if again, leader := fs.join("repo@sha256:x"); leader || again != f {
		t.Error("the failed download's end dropped the new one")
	}
}

// TestFlightsFailedSpoolIsNotRead: a late client of a foreign blob whose
// download has failed (its spool not yet removed) is not given the spool,
// whose reader would fail at once after a 200: it waits for the
// download's end and is answered 404.
func TestFlightsFailedSpoolIsNotRead(t *testing.T) {
	spool, err := os.CreateTemp(t.TempDir(), "spool")
	if err != nil {
		t.Fatal(err)
	}
	f := newFlight()
	f.update(func() { f.foreign, f.spool, f.refs, f.opened, f.size = true, spool, 1, true, 10 })
	if !f.acquireFrom(0) {
		t.Fatal("the spool of a download under way is not given")
	}
	f.release()
	f.update(func() { f.released, f.err = true, errForeignFetch })
	if f.acquireFrom(0) {
		f.release()
		t.Error("the spool of a failed download is given to a late client")
	}
	f.release()
}

// TestOfferAllCutsLooseOnlyBesideAFasterStream: a stream too far behind
// is cut loose, reading on from a spool that starts at the chunk it did
// not take, when another stream took that chunk; a stream behind with
// nobody else taking waits (the download waits for it), with no spool.
func TestOfferAllCutsLooseOnlyBesideAFasterStream(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	d := digest.FromString("blob")
	chunkOf := func(n int) *chunk {
		b := make([]byte, n)
		c := &chunk{buf: &b, b: b}
		c.refs.Store(1)
		return c
	}
	fill := func(s *stream) {
		for s.offer(chunkOf(1<<20)) == offerTaken {
		}
	}

	f := newFlight()
	f.refs, f.size = 1, 64<<20 // opened, as copyBlob does
	slow, fast := newStream(), newStream()
	fill(slow)
	if spool := offerAll(f, []*stream{slow, fast}, chunkOf(1024), 5<<20, d); spool == nil || f.spoolBase != 5<<20 {
		t.Fatalf("beside a stream that took the chunk: spool %v at %d, want one at %d", spool, f.spoolBase, 5<<20)
	}
	if !slow.behind || !slow.spooled || fast.behind {
		t.Errorf("cut loose: slow %v (holding the spool %v), fast %v; want the slow one only", slow.behind, slow.spooled, fast.behind)
	}
	slow.stop(f)
	f.release()

	f = newFlight()
	alone := newStream()
	fill(alone)
	done := make(chan *os.File, 1)
	go func() { done <- offerAll(f, []*stream{alone}, chunkOf(1024), 5<<20, d) }()
	select {
	case <-done:
		t.Fatal("a lone stream behind was not waited for")
	case <-time.After(100 * time.Millisecond):
	}
	c := <-alone.queue // the client takes a chunk
	alone.queued.Add(-c.cost())
	c.release()
	f.madeRoom()
	select {
	case spool := <-done:
		if spool != nil || alone.behind {
			t.Errorf("a lone stream was cut loose (spool %v)", spool)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the download did not go on once the lone stream made room")
	}

	// A download that spools already (a stream cut loose before reads
	// it) does not wait on a lone stream behind: waiting would hold the
	// spool's readers too.
	f = newFlight()
	f.refs, f.size = 1, 64<<20
	if f.startSpool(1<<20, d) == nil {
		t.Fatal("no spool")
	}
	last := newStream()
	fill(last)
	done = make(chan *os.File, 1)
	go func() { done <- offerAll(f, []*stream{last}, chunkOf(1024), 5<<20, d) }()
	select {
	case spool := <-done:
		if spool == nil || !last.behind || !last.spooled {
			t.Errorf("a lone stream behind a spooling download: spool %v, cut loose %v, holding the spool %v", spool, last.behind, last.spooled)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a spooling download waited on a lone stream behind, holding the spool's readers")
	}
	last.stop(f)
	f.release()
}
