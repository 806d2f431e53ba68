package server

// How a client streams a blob the mirror is downloading, without holding
// the download to its pace.
//
// The download hands each chunk to every client streaming it without
// waiting (stream.offer): a client's own request goroutine writes the
// chunks to its connection (stream.serve). A client that falls
// streamBehind bytes behind (a slow link, a client reading slowly) while
// another client of the blob keeps up is cut loose: it gets no more
// chunks, and once it has written those it holds, it reads the rest from
// the download's spool, a temporary file the download starts writing at
// the chunk the client could not take. So the download, the other clients
// and the cache fill go at the pace of the fastest client, not the
// slowest; a slow client costs a spool on disk, not memory. When every
// client of the blob is behind (the common case of one client, slower
// than the upstream) the download waits for the first to take the chunk,
// as a plain stream would: no spool is written for a client nobody else
// waits on. (Before, the download wrote to each client itself: one
// client not reading held the download, every other client of the blob,
// and its storage.)

import (
	"context"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
)

// streamBehind is how much memory the chunks a client has not yet
// written may hold (each counted as its whole buffer, whatever the read
// put in it) before it is cut loose to read from the spool: 64 chunks.
const (
	streamBehind = 16 << 20
	streamQueue  = streamBehind / copyBuffer
)

// stream is one client streaming a download.
type stream struct {
	queue  chan *chunk  // closed when the download ends or cuts it loose
	queued atomic.Int64 // the buffer bytes of the chunks in queue (chunk.cost)

	mu      sync.Mutex
	opened  bool  // the download's source answered
	size    int64 // the blob's, once opened; -1 when the source did not say
	behind  bool  // cut loose: the rest comes from the spool
	spooled bool  // cut loose holding a reference on the spool (f.release)
	ended   bool  // the download has ended
	err     error // why the download failed, once ended
	stopped bool  // the client is gone: it takes no more chunks
}

func newStream() *stream { return &stream{queue: make(chan *chunk, streamQueue), size: -1} }

// open records that the download's source answered, with size bytes (-1:
// unknown, and then no chunk is offered: the client is served from the
// storage).
func (s *stream) open(size int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opened, s.size = true, size
}

// What became of a chunk offered to a stream.
const (
	offerTaken = iota // queued for the client
	offerGone         // the stream takes no more chunks (cut loose, ended, client gone)
	offerFull         // the client is streamBehind bytes behind
)

// offer hands s chunk c, taking a reference on it, without waiting.
func (s *stream) offer(c *chunk) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.behind || s.stopped {
		return offerGone
	}
	if s.queued.Load()+c.cost() > streamBehind {
		return offerFull
	}
	c.refs.Add(1)
	select {
	case s.queue <- c:
		s.queued.Add(c.cost())
		return offerTaken
	default:
		c.release()
		return offerFull
	}
}

// offerAll hands chunk c, at the blob's offset off, to the streams of
// download f. Those too far behind are cut loose, with f's spool started
// at c, when another stream took c or f writes a spool already; else it
// waits for one of them to make room (f.room), as the download waits for
// a single client.
func offerAll(f *flight, streams []*stream, c *chunk, off int64, d digest.Digest) (spool *os.File) {
	for {
		var full []*stream
		taken := false
		for _, s := range streams {
			switch s.offer(c) {
			case offerTaken:
				taken = true
			case offerFull:
				full = append(full, s)
			}
		}
		if len(full) == 0 {
			return nil
		}
		// Cut loose beside a stream that took the chunk, or once the
		// download spools anyway (a foreign blob, a client cut loose
		// before, a late one): waiting on a full stream then would
		// also hold those reading the spool.
		if taken || f.spooling() {
			spool = f.startSpool(off, d)
			for _, s := range full {
				s.loosen(f, off)
			}
			return spool
		}
		<-f.room
		streams = full
	}
}

// loosen cuts s loose from download f at the blob's offset off, the
// first byte it was not given: it is offered no more chunks and reads the
// rest from f's spool, on which it takes a reference (held until serve is
// done with it, or the client is gone), if there is one.
func (s *stream) loosen(f *flight, off int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.behind {
		return
	}
	s.behind = true
	close(s.queue)
	if !s.stopped {
		s.spooled = f.acquireFrom(off)
	}
}

// end records that the download has ended, with err when it failed (the
// blob did not verify, or could not be fetched); the first end counts.
func (s *stream) end(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	s.ended, s.err = true, err
	if !s.behind {
		close(s.queue)
	}
}

// stop detaches a client that went away and frees the chunks it held.
func (s *stream) stop(f *flight) {
	s.mu.Lock()
	s.stopped = true
	spooled := s.spooled
	s.spooled = false
	s.mu.Unlock()
	if spooled {
		f.release()
	}
	defer f.madeRoom()
	for {
		select {
		case c, ok := <-s.queue:
			if !ok {
				return
			}
			c.release()
		default:
			return
		}
	}
}

// serve writes blob d, downloaded by f, to w as s receives it, in the
// request's goroutine: headers once the source has answered with a size,
// the last byte once the blob has verified, the rest from f's spool if s
// was cut loose. It returns false, having written nothing, when the
// download ended without a sized answer (the caller serves the client
// from the storage, or with the failure); true once the response has gone
// out, whole or cut short (a failed download, a client gone).
func (s *stream) serve(ctx context.Context, w http.ResponseWriter, d digest.Digest, f *flight) bool {
	t := &tap{w: w}
	started := false
	start := func() bool {
		if !started {
			s.mu.Lock()
			opened, size := s.opened, s.size
			s.mu.Unlock()
			if !opened || size < 0 {
				return false
			}
			t.start(d, size)
			started = true
		}
		return true
	}
	for open := true; open; {
		select {
		case c, ok := <-s.queue:
			if !ok {
				open = false
				break
			}
			if start() {
				_, _ = t.Write(c.b)
			}
			s.queued.Add(-c.cost())
			c.release()
			f.madeRoom()
			if t.failed() {
				s.stop(f)
				return true
			}
		case <-ctx.Done():
			t.stop()
			s.stop(f)
			return true
		}
	}
	if !start() {
		return false
	}
	s.mu.Lock()
	behind, spooled, err := s.behind, s.spooled, s.err
	s.mu.Unlock()
	if !behind {
		if err == nil {
			t.finish()
		}
		return true
	}
	if !spooled {
		return true // no spool: cut short
	}
	defer f.release()
	if _, err := io.CopyBuffer(t, &spoolReader{ctx: ctx, f: f, off: t.written()}, make([]byte, copyBuffer)); err == nil {
		t.finish()
	}
	return true
}
