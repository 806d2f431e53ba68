package foreign

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// minPart is the smallest part a blob is split into for parallel fetching:
// below it, one connection is as fast.
const minPart = 4 << 20

// errRangeIgnored means a server answered a Range request with the whole
// blob: parallel fetching is pointless there, the fetcher falls back to
// one connection.
var errRangeIgnored = errors.New("the server ignores Range requests")

// WithConnections sets how many connections fetch one large blob at once.
// A CDN caps each connection's bandwidth, not the client's, so n ranged
// requests for n contiguous parts of the blob arrive up to n times faster.
// Parts are spooled to temporary files (under os.TempDir) while earlier
// parts are passed on, so memory stays flat in the blob's size; each part
// resumes and retries on its own, and the digest is still checked over the
// whole blob in order. Blobs smaller than n×4 MiB, and servers that ignore
// Range, get one connection. The default is 1: one connection, no spool.
func WithConnections(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("connections must be at least 1, got %d", n)
		}
		o.connections = n
		return nil
	}
}

// part is one contiguous range of a blob, fetched by its own stream into
// its own spool file.
type part struct {
	start, end int64
	s          *stream
	file       *os.File

	mu    sync.Mutex
	cond  *sync.Cond
	avail int64 // bytes written to file
	err   error // the fill's failure, or io.EOF when complete
}

// parallel passes on the parts' bytes in order.
type parallel struct {
	cancel context.CancelFunc
	parts  []*part
	cur    int   // the part being read
	pos    int64 // bytes of parts[cur] passed on
	wg     sync.WaitGroup
	once   sync.Once
}

// openParallel connects one stream per part of raw's blob. It fails with
// errRangeIgnored when the server does not honour Range.
func (f *Fetcher) openParallel(ctx context.Context, desc v1.Descriptor, raw string) (*parallel, error) {
	n := int64(f.o.connections)
	size := (desc.Size + n - 1) / n
	ctx, cancel := context.WithCancel(ctx)
	p := &parallel{cancel: cancel}
	for start := int64(0); start < desc.Size; start += size {
		pt := &part{start: start, end: min(start+size, desc.Size)}
		pt.cond = sync.NewCond(&pt.mu)
		pt.s = f.newStream(ctx, desc, raw)
		pt.s.off = start
		pt.s.requireRange = start > 0
		p.parts = append(p.parts, pt)
	}
	// Connect every part before returning, so that a URL that fails, or
	// ignores Range, is known now and the caller can move on.
	for _, pt := range p.parts {
		if err := pt.s.connect(pt.start); err != nil {
			p.Close()
			return nil, err
		}
		file, err := os.CreateTemp("", "ferry-foreign-part-*")
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("foreign blob %s: spool: %w", desc.Digest, err)
		}
		pt.file = file
	}
	for _, pt := range p.parts {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			pt.fill()
		}()
	}
	return p, nil
}

// partBuf is each part's copy buffer. Parts exist for connections the
// server caps (tens of MB/s each), which never fill more than a few
// socket reads' worth at a time: 64 KiB keeps the system calls few and the
// memory of n parts small.
const partBuf = 64 << 10

// fill copies the part's bytes from its stream into its spool file.
func (pt *part) fill() {
	buf := make([]byte, partBuf)
	want := pt.end - pt.start
	var got int64
	var err error
	for got < want && err == nil {
		var n int
		n, err = pt.s.Read(buf[:min(int64(len(buf)), want-got)])
		if n > 0 {
			if _, werr := pt.file.WriteAt(buf[:n], got); werr != nil {
				err = fmt.Errorf("spool: %w", werr)
				break
			}
			got += int64(n)
			pt.mu.Lock()
			pt.avail = got
			pt.cond.Broadcast()
			pt.mu.Unlock()
		}
	}
	if got == want {
		err = io.EOF
	} else if err == nil || errors.Is(err, io.EOF) {
		err = fmt.Errorf("%w: the part from byte %d ended after %d of %d bytes", io.ErrUnexpectedEOF, pt.start, got, want)
	}
	pt.s.Close()
	pt.mu.Lock()
	pt.err = err
	pt.cond.Broadcast()
	pt.mu.Unlock()
}

// Read implements io.Reader: the parts' bytes in order, each as soon as
// its part has it.
func (p *parallel) Read(b []byte) (int, error) {
	for p.cur < len(p.parts) {
		pt := p.parts[p.cur]
		size := pt.end - pt.start
		if p.pos == size {
			pt.release()
			p.cur, p.pos = p.cur+1, 0
			continue
		}
		pt.mu.Lock()
		for pt.avail <= p.pos && pt.err == nil {
			pt.cond.Wait()
		}
		avail, err, file := pt.avail, pt.err, pt.file
		pt.mu.Unlock()
		if avail <= p.pos {
			return 0, err // the part failed before the bytes asked for
		}
		if file == nil {
			return 0, errClosed
		}
		n, rerr := file.ReadAt(b[:min(int64(len(b)), avail-p.pos)], p.pos)
		p.pos += int64(n)
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return n, fmt.Errorf("spool: %w", rerr)
		}
		if n > 0 {
			return n, nil
		}
	}
	return 0, io.EOF
}

// release closes and removes the part's spool file.
func (pt *part) release() {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if pt.file != nil {
		pt.file.Close()
		os.Remove(pt.file.Name())
		pt.file = nil
	}
}

// Close stops every part and removes the spool files.
func (p *parallel) Close() error {
	p.once.Do(func() {
		p.cancel()
		for _, pt := range p.parts {
			pt.s.Close()
		}
		p.wg.Wait()
		for _, pt := range p.parts {
			pt.release()
		}
	})
	return nil
}
