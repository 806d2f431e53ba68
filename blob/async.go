package blob

import (
	"hash"
	"runtime"
	"sync"
)

// AsyncThreshold is the declared size from which a Reader hashes on a
// second goroutine. Below it the hand-off costs more than it saves.
const AsyncThreshold = 8 << 20

// Async hashing: on a large blob, sha256 is the single most expensive step
// of a transfer (about 0.4 s per GB even with SHA-NI), and done inline it
// serializes with the socket and file system calls of the same goroutine.
// The Reader instead copies each chunk into one of a few staging buffers
// and a hasher goroutine consumes them, so hashing overlaps the I/O on
// another core. Memory stays flat: asyncBuffers buffers of asyncBufSize
// per blob in flight, whatever the blob's size. The verdict is unchanged:
// Read waits for the hasher before it returns the last byte's result.
const (
	asyncBufSize = 128 << 10
	asyncBuffers = 3
)

var asyncPool = sync.Pool{New: func() any { b := make([]byte, 0, asyncBufSize); return &b }}

// asyncHasher feeds a hash from a goroutine. write and finish are called
// from the reader's goroutine only; stop may be called from anywhere, and
// more than once.
type asyncHasher struct {
	h    hash.Hash
	free chan *[]byte // empty buffers
	full chan *[]byte // buffers to hash, closed by stop
	done chan struct{}
	cur  *[]byte
	once sync.Once
}

// useAsync says whether a blob of the declared size is hashed on a second
// goroutine: only large ones, and only when there is a second core.
func useAsync(size int64) bool {
	return size >= AsyncThreshold && runtime.GOMAXPROCS(0) > 1
}

func newAsyncHasher(h hash.Hash) *asyncHasher {
	a := &asyncHasher{
		h:    h,
		free: make(chan *[]byte, asyncBuffers),
		full: make(chan *[]byte, asyncBuffers),
		done: make(chan struct{}),
	}
	for range asyncBuffers {
		a.free <- asyncPool.Get().(*[]byte)
	}
	go a.run()
	return a
}

func (a *asyncHasher) run() {
	defer close(a.done)
	for b := range a.full {
		a.h.Write(*b)
		*b = (*b)[:0]
		a.free <- b
	}
}

// write copies p into the staging buffers, handing each full one to the
// hasher.
func (a *asyncHasher) write(p []byte) {
	for len(p) > 0 {
		if a.cur == nil {
			a.cur = <-a.free
		}
		b := *a.cur
		k := copy(b[len(b):cap(b)], p)
		*a.cur = b[:len(b)+k]
		p = p[k:]
		if len(*a.cur) == cap(*a.cur) {
			a.full <- a.cur
			a.cur = nil
		}
	}
}

// finish hands over the partial buffer, waits for the hasher to drain and
// returns the hash, which no other goroutine touches any more.
func (a *asyncHasher) finish() hash.Hash {
	if a.cur != nil && len(*a.cur) > 0 {
		a.full <- a.cur
		a.cur = nil
	}
	a.stop()
	<-a.done
	a.release()
	return a.h
}

// stop ends the hasher goroutine once it has hashed what it was given. A
// Reader abandoned mid-blob calls it from Close or from a cleanup when it
// is collected, so no goroutine outlives its Reader.
func (a *asyncHasher) stop() { a.once.Do(func() { close(a.full) }) }

// release returns the buffers to the pool once the hasher has exited.
func (a *asyncHasher) release() {
	if a.cur != nil {
		asyncPool.Put(a.cur)
		a.cur = nil
	}
	for {
		select {
		case b := <-a.free:
			*b = (*b)[:0]
			asyncPool.Put(b)
		default:
			return
		}
	}
}
