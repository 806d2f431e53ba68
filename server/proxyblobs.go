package server

// How the mirror fetches a blob it does not hold, ordinary or foreign:
// ferry's own path, not distribution's proxy blob store.
//
// Why not distribution's (registry/proxy, proxyBlobStore.ServeBlob in
// v3.1): it asks the upstream twice per blob (a HEAD for the size, then
// the GET); it creates its blob writer, whose startedat file is written
// and fsynced with its directory, before the first byte goes out; it
// copies through io.MultiWriter(client, storage), so every client write
// waits on the disk write before it; and the response ends only when
// Commit returns, after the data, the hash state and the link files have
// been fsynced, so the client's last bytes wait for the disk to flush.
// A second request for a blob being fetched fetches it again from the
// upstream, uncached. Measured (docs/mirror.md): a cold crane pull through
// it took 2.3-4x a pull straight from the upstream, most of it waiting on
// fsyncs while the disk was busy with other writers.
//
// Here one download per blob (a flight) runs under the server's context:
// the upstream's GET (go-containerregistry's transport: the upstream's
// authentication, ferry's User-Agent), else, for a blob the upstream does
// not hold that a cached manifest lists with urls, ferry's foreign
// fetcher. It reads the bytes once and hashes them; each chunk goes to
// the clients streaming it and is handed to the storage writer (the
// blob lands as a pushed one does: storeVerified), which runs beside it: the clients never wait on the disk unless the
// storage falls more than storageQueue behind. The last byte of a blob
// is released to the clients when its digest and size have been
// verified, before the blob is committed (fsynced) to the storage, which
// goes on in the background; a blob whose bytes do not verify is cut
// short for every client and stored nowhere.
//
// Clients asking for a blob before its first bytes have gone out stream
// from its download. One asking later streams an ordinary blob straight
// from the upstream (verified the same way, not stored a second time), or
// waits for it to be stored once it is verified; a foreign blob (its URL
// is fetched once) from a temporary spool file its download also writes,
// removed when the download has ended and its last reader is done.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrv1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/internal/regstorage"
	"github.com/ferry-dev/ferry/internal/regstorage/aliaslinks"
	"github.com/ferry-dev/ferry/internal/regstorage/uploads"
	"github.com/ferry-dev/ferry/internal/sharedcall"
	"github.com/ferry-dev/ferry/internal/stall"
	"github.com/ferry-dev/ferry/version"
)

const (
	// copyBuffer is the size of the reads from the source.
	copyBuffer = 256 << 10
	// storageQueue is how many chunks (reads of at most copyBuffer
	// bytes) a download holds for the storage writer, and for the hash,
	// before it waits for them: 16 MiB at most.
	storageQueue = 64
)

// chunks are the download buffers, reused.
var chunks = sync.Pool{New: func() any { b := make([]byte, copyBuffer); return &b }}

// Why a flight failed, as the client is told (the detail is logged).
var (
	errNotUpstream  = errors.New("the upstream does not hold the blob")
	errUnreachable  = errors.New("the upstream could not be asked for the blob")
	errForeignFetch = errors.New("the foreign blob could not be fetched from its urls")
	errCorrupt      = errors.New("the bytes fetched do not match the blob's digest and size")
)

// flight is one download of a blob, into the storage unless it is a
// late client's own (stream).
type flight struct {
	mu        sync.Mutex
	changed   chan struct{} // closed and replaced on every change
	opened    bool          // the source answered; nobody joins the stream after
	foreign   bool          // the source is the blob's urls
	streams   []*stream     // the clients streaming it (proxystream.go)
	wantSpool atomic.Bool   // a late client asks for a spool from the next chunk (streamLate)
	room      chan struct{} // a stream has taken a chunk out of its queue (1 buffered)
	released  bool          // verified (streams finished) or failed (streams cut short)
	verified  bool          // released with the blob's digest and size matching
	done      bool          // stored, or failed
	err       error         // why it failed
	size      int64         // the blob's, once opened; -1 when the source did not say

	// A foreign blob's bytes are also kept in a temporary spool file
	// while it downloads, from its first byte, for the clients that come
	// after its first bytes have gone out (its URL is fetched once). Any
	// download starts one at the chunk a streaming client could not
	// take, for that client to read the rest from (proxystream.go).
	spool     *os.File
	spoolBase int64 // the blob's offset of the spool's first byte
	spooled   int64 // bytes in the spool
	spoolErr  error // writing the spool failed: its readers are cut short
	refs      int   // the download's and the spool readers' references
}

func newFlight() *flight {
	return &flight{changed: make(chan struct{}), room: make(chan struct{}, 1), size: -1}
}

// madeRoom wakes the download if it waits for a stream to take a chunk.
func (f *flight) madeRoom() {
	select {
	case f.room <- struct{}{}:
	default:
	}
}

// update changes f under its lock and wakes whoever waits on it.
func (f *flight) update(change func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change()
	close(f.changed)
	f.changed = make(chan struct{})
}

// wait returns when cond, checked under f's lock, holds or ctx ends.
func (f *flight) wait(ctx context.Context, cond func() bool) error {
	for {
		f.mu.Lock()
		ok, ch := cond(), f.changed
		f.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// subscribe adds s to the clients streaming f; false once f's source
// has answered (its first bytes may have gone out).
func (f *flight) subscribe(s *stream) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.opened || f.released {
		return false
	}
	f.streams = append(f.streams, s)
	return true
}

// spooling reports whether f writes a spool.
func (f *flight) spooling() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.spool != nil && f.spoolErr == nil
}

// verifiedNow reports whether f has fetched and verified the whole blob
// (it may still be storing it).
func (f *flight) verifiedNow() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.verified
}

// failed reports whether f's download has failed.
func (f *flight) failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.released && f.err != nil
}

// acquireFrom takes a reference on f's spool for a reader starting at
// the blob's offset off; false when there is none, it starts after off,
// or the download has failed.
func (f *flight) acquireFrom(off int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.spool == nil || f.size < 0 || off < f.spoolBase || f.released && !f.verified {
		return false
	}
	f.refs++
	return true
}

// startSpool starts f's spool at the blob's offset base, unless it has
// one; it returns the spool, nil when there is none (it failed).
func (f *flight) startSpool(base int64, d digest.Digest) *os.File {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.spoolErr != nil {
		return nil
	}
	if f.spool == nil {
		spool, err := os.CreateTemp("", "ferry-mirror-*.blob")
		if err != nil {
			logrus.WithField("digest", d).Warnf("mirror: no spool for a client that fell behind, it is cut short: %v", err)
			f.spoolErr = fmt.Errorf("spool: %w", err)
			return nil
		}
		f.spool, f.spoolBase = spool, base
	}
	return f.spool
}

// release drops a reference on f's spool, removing it with the last.
func (f *flight) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refs--
	if f.refs == 0 && f.spool != nil {
		name := f.spool.Name()
		_ = f.spool.Close()
		_ = os.Remove(name)
		f.spool = nil
	}
}

// spoolReader reads a flight's spool as it fills, from the blob's offset
// off (at or after the spool's base). It holds back the blob's last byte
// until the blob is verified, returns the flight's error if the download
// fails, and io.EOF once the blob is verified and read whole.
type spoolReader struct {
	ctx context.Context
	f   *flight
	off int64
}

// Read implements io.Reader.
func (r *spoolReader) Read(p []byte) (int, error) {
	f := r.f
	var avail int64
	var err error
	if werr := f.wait(r.ctx, func() bool {
		end := f.spoolBase + f.spooled
		switch {
		case f.released && !f.verified:
			if err = f.err; err == nil {
				err = io.ErrUnexpectedEOF
			}
		case f.spoolErr != nil:
			err = f.spoolErr
		case f.verified && r.off >= end:
			err = io.EOF
		default:
			avail = end
			if !f.verified && avail >= f.size {
				avail = f.size - 1
			}
			return avail > r.off
		}
		return true
	}); werr != nil {
		return 0, werr
	}
	if err != nil {
		return 0, err
	}
	if n := avail - r.off; int64(len(p)) > n {
		p = p[:n]
	}
	n, err := f.spool.ReadAt(p, r.off-f.spoolBase)
	r.off += int64(n)
	if errors.Is(err, io.EOF) && n > 0 {
		err = nil
	}
	return n, err
}

// flights are the downloads running, by repository and digest.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

// join returns key's download and whether the caller starts it. One
// that has failed (and is only cleaning up) is not joined: the caller
// starts another.
func (fs *flights) join(key string) (*flight, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f, ok := fs.m[key]; ok && !f.failed() {
		return f, false
	}
	if fs.m == nil {
		fs.m = map[string]*flight{}
	}
	f := newFlight()
	fs.m[key] = f
	return f, true
}

// elsewhere returns a download of blob d under way for another
// repository than local, nil when there is none.
func (fs *flights) elsewhere(local string, d digest.Digest) *flight {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	suffix := "@" + d.String()
	for key, f := range fs.m {
		if key != local+suffix && strings.HasSuffix(key, suffix) && !f.failed() {
			return f
		}
	}
	return nil
}

// end records key's result and lets its waiters go.
func (fs *flights) end(key string, f *flight, err error) {
	fs.mu.Lock()
	if fs.m[key] == f {
		delete(fs.m, key)
	}
	fs.mu.Unlock()
	var streams []*stream
	f.update(func() {
		f.released, f.done, streams = true, true, f.streams
		if f.err == nil {
			f.err = err
		}
	})
	for _, s := range streams {
		s.end(err) // those the download did not open
	}
}

// serveBlob answers a GET or HEAD for blob d of repository local that
// the storage does not hold: it joins (or starts) the blob's download. A
// whole-blob GET streams it (from the download, or straight from the
// upstream when the download's first bytes have gone out); a HEAD or a
// ranged GET waits until the blob is stored and is then served from the
// storage by next.
func (m *mirror) serveBlob(w http.ResponseWriter, r *http.Request, local string, d digest.Digest, next http.Handler) {
	key := local + "@" + d.String()
	f, leader := m.flights.join(key)
	var s *stream
	if r.Method == http.MethodGet && r.Header.Get("Range") == "" {
		s = newStream()
		if !f.subscribe(s) {
			s = nil
		}
	}
	if leader {
		m.download(key, local, d, f)
	}
	ctx := r.Context()
	if s != nil {
		if s.serve(ctx, w, d, f) {
			return // streamed; cut short on failure, so the client sees it
		}
	} else if r.Method == http.MethodGet && r.Header.Get("Range") == "" {
		f.mu.Lock()
		// A verified ordinary blob is about to be in the storage: wait
		// for it rather than read the upstream again.
		late, foreign := f.opened && !f.foreign && !f.released, f.opened && f.foreign
		f.mu.Unlock()
		if late && m.streamLate(w, r, local, d, f) {
			return
		}
		f.mu.Lock()
		late = !f.released
		f.mu.Unlock()
		if late && m.streamUpstream(w, r, local, d) {
			return
		}
		if foreign && f.acquireFrom(0) {
			defer f.release()
			streamSpool(w, r, d, f)
			return
		}
	}
	if f.wait(ctx, func() bool { return f.done }) != nil {
		return
	}
	if f.err != nil {
		m.blobFailed(w, local, d, f.err, f.foreign)
		return
	}
	next.ServeHTTP(w, r)
}

// prefetch starts the download of blob d of repository local into the
// cache, as a client's GET would, unless one is under way; no client
// streams it, those that ask join it as they join any download.
func (m *mirror) prefetch(local string, d digest.Digest) {
	key := local + "@" + d.String()
	if f, leader := m.flights.join(key); leader {
		m.download(key, local, d, f)
	}
}

// download runs flight f, which fetches blob d of repository local and
// is known by key, in the background: under the server's context, not a
// request's, and waited for by Close.
func (m *mirror) download(key, local string, d digest.Digest, f *flight) {
	m.background.Add(1)
	go func() {
		defer m.background.Done()
		m.flights.end(key, f, m.fetchBlob(local, d, f))
	}()
}

// streamUpstream streams blob d of repository local straight from the
// upstream to a client that came after its download had begun, verified
// as a download is, storing nothing. It returns false, having written
// nothing, when the upstream cannot give it, or not with its size.
func (m *mirror) streamUpstream(w http.ResponseWriter, r *http.Request, local string, d digest.Digest) bool {
	up, rest := m.split(local)
	src, size, err := up.getBlob(r.Context(), rest, d)
	if err != nil {
		return false
	}
	defer src.Close()
	if size < 0 {
		return false // unsized: nothing to stream with, the download stores it
	}
	return m.streamFrom(w, r, local, d, src, size)
}

// streamFrom streams src, blob d of repository local of size bytes, to
// one client, verified as a download is, storing nothing; it closes src
// when the client goes away.
func (m *mirror) streamFrom(w http.ResponseWriter, r *http.Request, local string, d digest.Digest, src io.ReadCloser, size int64) bool {
	defer src.Close()
	s := newStream()
	f := newFlight()
	f.streams, f.refs = []*stream{s}, 1
	defer f.release()
	copied := make(chan error, 1)
	go func() { copied <- m.copyBlob(src, d, size, f, nil) }()
	served := s.serve(r.Context(), w, d, f)
	if r.Context().Err() != nil {
		_ = src.Close() // the client is gone: stop reading for it
	}
	if err := <-copied; err != nil && r.Context().Err() == nil {
		logrus.WithField("digest", d).WithField("repository", local).Warnf("mirror: blob not streamed: %v", err)
	}
	return served
}

// streamLate streams ordinary blob d of repository local to a client that
// came after its download f had begun (its first bytes gone out), as f
// fetches it (readAlong), verified as a download is. Before, such a
// client read the whole blob from the upstream a second time, and a
// fleet of nodes pulling one new image through the mirror at once read
// it once per node. It returns false, having written nothing, when it
// cannot: f ends first (the blob is then served from the storage), or the
// upstream takes no range (the caller streams the whole blob from the
// upstream).
func (m *mirror) streamLate(w http.ResponseWriter, r *http.Request, local string, d digest.Digest, f *flight) bool {
	src, size, ok := m.readAlong(r.Context(), local, d, f)
	if !ok {
		return false
	}
	return m.streamFrom(w, r, local, d, src, size)
}

// readAlong returns blob d, for repository local, as download f (of
// local or of another repository) fetches it: the bytes f has yet to
// fetch from f's spool, which f starts for the reader at its next chunk,
// and those before from local's upstream again, by a ranged GET. The
// reader holds a reference on f's spool until it is closed. ok is false
// when it cannot: f is unsized, ends first, or the upstream takes no
// range.
func (m *mirror) readAlong(ctx context.Context, local string, d digest.Digest, f *flight) (io.ReadCloser, int64, bool) {
	if f.wait(ctx, func() bool { return f.opened || f.released }) != nil {
		return nil, 0, false
	}
	f.mu.Lock()
	sized := f.size >= 0 && !f.released
	f.mu.Unlock()
	if !sized {
		return nil, 0, false // no spool for an unsized download: it is stored, then served
	}
	f.wantSpool.Store(true)
	if f.wait(ctx, func() bool { return f.spool != nil || f.spoolErr != nil || f.released }) != nil {
		return nil, 0, false
	}
	f.mu.Lock()
	base, size, ok := f.spoolBase, f.size, f.spool != nil && f.spoolErr == nil && !f.released
	f.mu.Unlock()
	if !ok || !f.acquireFrom(base) {
		return nil, 0, false
	}
	up, rest := m.split(local)
	prefix := io.NopCloser(strings.NewReader(""))
	if base > 0 {
		rc, err := up.getBlobPrefix(ctx, rest, d, base)
		if err != nil {
			f.release()
			logrus.WithField("digest", d).WithField("repository", local).Debugf("mirror: the blob is read whole from the upstream: %v", err)
			return nil, 0, false
		}
		prefix = rc
	}
	return &alongBody{Reader: io.MultiReader(io.LimitReader(prefix, base), &spoolReader{ctx: ctx, f: f, off: base}), prefix: prefix, f: f}, size, true
}

// alongBody is readAlong's reader.
type alongBody struct {
	io.Reader
	prefix io.Closer
	f      *flight
	once   sync.Once
}

// Close implements io.Closer.
func (b *alongBody) Close() error {
	b.once.Do(func() {
		_ = b.prefix.Close()
		b.f.release()
	})
	return nil
}

// streamSpool streams foreign blob d from flight f's spool, whose
// reference the caller holds; a failed download cuts it short.
func streamSpool(w http.ResponseWriter, r *http.Request, d digest.Digest, f *flight) {
	t := &tap{w: w}
	t.start(d, f.size)
	if _, err := io.CopyBuffer(t, &spoolReader{ctx: r.Context(), f: f}, make([]byte, copyBuffer)); err == nil {
		t.finish()
	}
}

// blobFailed answers a request for a blob whose download failed: 404
// BLOB_UNKNOWN saying why in general terms (no URL, no upstream error;
// those are logged by the download).
func (m *mirror) blobFailed(w http.ResponseWriter, local string, d digest.Digest, err error, foreign bool) {
	up, _ := m.split(local)
	msg := "blob unknown to the mirror and to its upstream " + up.Name
	switch {
	case errors.Is(err, errForeignFetch), foreign && errors.Is(err, errCorrupt):
		msg = "foreign blob not in the cache, and it could not be fetched from its urls"
	case errors.Is(err, errCorrupt):
		msg = fmt.Sprintf("not in the mirror's cache, and what upstream %s sent did not match the digest", up.Name)
	case errors.Is(err, errUnreachable):
		msg = fmt.Sprintf("not in the mirror's cache, and upstream %s could not be asked for it", up.Name)
	case !errors.Is(err, errNotUpstream):
		msg = "not in the mirror's cache, and it could not be fetched"
	}
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	serveError(w, errcode.ErrorCodeBlobUnknown.WithMessage(msg).WithDetail(d))
}

// fetchBlob downloads blob d of repository local to f's clients and into
// the storage. It runs under the server's context, not a request's: a
// client that goes away does not end it.
func (m *mirror) fetchBlob(local string, d digest.Digest, f *flight) error {
	ctx := m.ctx
	log := logrus.WithField("digest", d).WithField("repository", local)
	named, err := reference.WithName(local)
	if err != nil {
		return err
	}
	repo, err := m.local.Repository(ctx, named)
	if err != nil {
		return err
	}
	blobs := repo.Blobs(ctx)
	_, err = blobs.Stat(ctx, d)
	if err == nil {
		return nil // stored meanwhile (another replica, a flight just ended)
	}
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%w: %w", errNotUpstream, err)
	}
	// Not linked here (rather than not readable: that is fetched).
	if errors.Is(err, distribution.ErrBlobUnknown) && m.linkHeld(ctx, local, d) {
		return nil
	}
	src, size, foreign, err := m.openBlob(ctx, local, d)
	if err != nil {
		log.Warnf("mirror: blob not fetched: %v", err)
		return err
	}
	defer src.Close()
	var spool *os.File
	if foreign && size >= 0 {
		if spool, err = os.CreateTemp("", "ferry-mirror-*.blob"); err != nil {
			log.Warnf("mirror: no spool for the clients that come late, they wait: %v", err)
		}
	}
	f.update(func() { f.foreign, f.spool, f.refs = foreign, spool, 1 })
	defer f.release()
	queue := make(chan *chunk, storageQueue)
	stored := make(chan error, 1)
	var verified atomic.Bool
	go func() {
		if d.Algorithm() == digest.SHA256 && size > 0 {
			stored <- m.storeVerified(ctx, local, d, queue, &verified)
		} else {
			stored <- m.storeBlob(ctx, blobs, d, queue, &verified)
		}
	}()
	err = m.copyBlob(src, d, size, f, queue)
	verified.Store(err == nil)
	close(queue)
	if err != nil {
		log.Warnf("mirror: blob not fetched: %v", err)
		<-stored
		return err
	}
	if err := <-stored; err != nil {
		log.Errorf("mirror: blob served but not stored: %v", err)
		return err
	}
	return nil
}

// linkHeld links sha256 blob d into repository local without fetching
// it when the storage holds its bytes already (another repository of the
// mirror pulled it: base layers are shared by many images) and local's
// upstream repository has it: the upstream answers a HEAD for it in that
// repository with its size, or, for a blob it does not hold, a cached
// manifest of local lists it, with that size, with urls (a foreign
// layer). The blob is linked as a pushed one is; a client of local gets
// it from the cache, and no byte of it is fetched again. Asking the
// upstream keeps repositories apart as the upstream has them: a blob
// local's upstream repository does not have is not served through it.
func (m *mirror) linkHeld(ctx context.Context, local string, d digest.Digest) bool {
	stored, ok := m.heldSize(ctx, d)
	if !ok {
		return false
	}
	up, rest := m.split(local)
	if up == nil {
		return false
	}
	held := false
	if up.reachable() {
		size, err := up.headBlob(ctx, rest, d)
		held = err == nil && (size < 0 || size == stored)
	}
	if !held {
		desc, err := m.foreignLayer(ctx, local, d)
		held = err == nil && desc.Size == stored
	}
	if !held {
		return false
	}
	if err := aliaslinks.Write(ctx, m.driver, local, aliaslinks.Layers, d, d); err != nil {
		logrus.WithField("digest", d).WithField("repository", local).Warnf("mirror: blob held for another repository not linked, fetching it: %v", err)
		return false
	}
	return true
}

// copyBlob copies src (blob d, size bytes or -1 when unknown) to f's
// clients, hashing it, and hands each chunk to queue (when not nil). The
// clients get their headers first (none when size is unknown: they are
// then served from the storage) and the last byte once digest and size
// match; f is released either way. A client that cannot take a chunk at
// once is cut loose to read the rest from f's spool (proxystream.go),
// which starts at that chunk unless f has one.
func (m *mirror) copyBlob(src io.Reader, d digest.Digest, size int64, f *flight, queue chan<- *chunk) error {
	var streams, all []*stream
	var spool *os.File
	f.update(func() {
		f.opened, f.size, spool, all = true, size, f.spool, f.streams
		if size >= 0 {
			streams = f.streams
		}
	})
	for _, s := range all {
		s.open(size)
	}
	var off int64 // the blob's offset of the next chunk
	// The hash runs beside the stream, as the storage writer does: the
	// clients' bytes wait for neither (unless one falls storageQueue
	// behind); only their last byte waits, for the hash.
	hashed := make(chan *chunk, storageQueue)
	sum := make(chan digest.Digest, 1)
	selfChecked := checksItself(src)
	go func() {
		h := d.Algorithm().Hash()
		for c := range hashed {
			if !selfChecked {
				h.Write(c.b)
			}
			c.release()
		}
		if selfChecked {
			// The stream fails the read that completes a blob whose
			// size or digest does not match: reaching its end is the
			// check, and the bytes need not be hashed a second time.
			sum <- d
			return
		}
		sum <- digest.NewDigest(d.Algorithm(), h)
	}()
	n, err := readChunks(src, size, func(c *chunk) {
		if spool == nil && size >= 0 && f.wantSpool.Load() {
			spool = f.startSpool(off, d) // for a late client (streamLate)
		}
		if sp := offerAll(f, streams, c, off, d); sp != nil {
			spool = sp
		}
		off += int64(len(c.b))
		if spool != nil {
			// For the clients that read the spool (late ones of a
			// foreign blob, ones that fell behind): a write to the
			// page cache, which does not hold the stream.
			_, werr := spool.Write(c.b)
			f.update(func() {
				f.spooled += int64(len(c.b))
				if werr != nil && f.spoolErr == nil {
					f.spoolErr = fmt.Errorf("spool: %w", werr)
				}
			})
			if werr != nil {
				spool = nil
			}
		}
		if queue != nil {
			c.refs.Add(1)
			queue <- c
		}
		hashed <- c
	})
	close(hashed)
	got := <-sum
	if err == nil && (got != d || size >= 0 && n != size) {
		err = fmt.Errorf("%w: got %d bytes hashing to %s, want %d bytes, %s", errCorrupt, n, got, size, d)
	}
	f.update(func() {
		f.released, f.verified = true, err == nil
		if f.err == nil {
			f.err = err
		}
	})
	for _, s := range all {
		s.end(err)
	}
	return err
}

// chunk is a download buffer on its way to the hasher and the storage
// writer; the last to be done with it returns it to the pool.
type chunk struct {
	buf  *[]byte
	b    []byte
	refs atomic.Int32
}

// cost is the memory c holds: its whole buffer.
func (c *chunk) cost() int64 { return int64(cap(*c.buf)) }

// release returns c's buffer to the pool when nobody holds it any more.
func (c *chunk) release() {
	if c.refs.Add(-1) == 0 {
		chunks.Put(c.buf)
	}
}

// readChunks reads src to its end in chunks, passing each to use (which
// takes a reference on it), and returns how many bytes it read; more than
// size (when known) is an error.
func readChunks(src io.Reader, size int64, use func(*chunk)) (int64, error) {
	var n int64
	for {
		c := &chunk{buf: chunks.Get().(*[]byte)}
		c.refs.Store(1)
		k, err := src.Read(*c.buf)
		if k > 0 {
			c.b = (*c.buf)[:k]
			n += int64(k)
			if size >= 0 && n > size {
				c.release()
				return n, fmt.Errorf("%w: more than %d bytes", errCorrupt, size)
			}
			use(c)
		} else {
			c.release()
		}
		switch {
		case errors.Is(err, io.EOF):
			return n, nil
		case errors.Is(err, errForeignFetch):
			return n, err
		case err != nil:
			return n, fmt.Errorf("%w: %w", errUnreachable, err)
		}
	}
}

// storeVerified writes the chunks from queue into the storage as the
// sha256 blob d of repository local, as distribution's blob writer does
// (the bytes under the repository's _uploads, committed, moved to the
// blob's place unless it is there already, then the repository's link)
// once the queue is closed with verified set; otherwise, or on failure,
// it stores nothing. It drains the queue whatever happens.
//
// Why not distribution's blob writer, as storeBlob: it hashes every byte
// it writes and exposes the hash only through Commit, after its fsync;
// the mirror must know the digest before then, to release a client's
// last byte, so it hashes too. Measured on a cold pull of a 95 MB image
// on a 2-core machine, the second sha256 pass was a fifth of the mirror's
// CPU time. Here the bytes are hashed once, by copyBlob, and only
// verified bytes land. Digests of other algorithms, and empty blobs (a
// special case of distribution's), still go through the blob writer,
// which stores them under their sha256 digest.
func (m *mirror) storeVerified(ctx context.Context, local string, d digest.Digest, queue <-chan *chunk, verified *atomic.Bool) error {
	dir, err := uploads.Dir(local, uuid.NewString())
	data := path.Join(dir, "data")
	var fw storagedriver.FileWriter
	if err == nil {
		fw, err = m.driver.Writer(ctx, data, false)
	}
	if _, derr := drain(queue, fw, err != nil); err == nil {
		err = derr
	}
	if err == nil && !verified.Load() {
		err = errCorrupt
	}
	if fw != nil {
		if err == nil {
			err = fw.Commit(ctx)
		} else {
			_ = fw.Cancel(ctx)
		}
		if cerr := fw.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = m.placeBlob(ctx, local, d, data)
	}
	if dir != "" {
		_ = uploads.RemoveDir(ctx, m.driver, dir)
	}
	if err != nil {
		return fmt.Errorf("store blob %s: %w", d, err)
	}
	return nil
}

// placeBlob moves the committed upload data to blob d's place, unless a
// blob is there already (content addressing: the same bytes), and links d
// into repository local, as distribution's blob writer commits.
func (m *mirror) placeBlob(ctx context.Context, local string, d digest.Digest, data string) error {
	blob := regstorage.BlobPath(d)
	_, err := m.driver.Stat(ctx, blob)
	switch {
	case errors.As(err, new(storagedriver.PathNotFoundError)):
		if err := m.driver.Move(ctx, data, blob); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	return aliaslinks.Write(ctx, m.driver, local, aliaslinks.Layers, d, d)
}

// drain writes the chunks from queue to w (none when skip is set, or
// after a write failed) until the queue is closed, releasing each, and
// returns the bytes written and the first write error.
func drain(queue <-chan *chunk, w io.Writer, skip bool) (int64, error) {
	var n int64
	var err error
	for c := range queue {
		if !skip && err == nil {
			var k int
			k, err = w.Write(c.b)
			n += int64(k)
		}
		c.release()
	}
	return n, err
}

// storeBlob writes the chunks from queue into blobs through
// distribution's blob writer, committing them as blob d once the queue
// is closed with verified set; otherwise, or on failure, it stores
// nothing. It drains the queue whatever happens.
func (m *mirror) storeBlob(ctx context.Context, blobs distribution.BlobStore, d digest.Digest, queue <-chan *chunk, verified *atomic.Bool) error {
	bw, err := blobs.Create(ctx)
	n, derr := drain(queue, bw, err != nil)
	if err == nil {
		err = derr
	}
	switch {
	case bw == nil:
	case err == nil && verified.Load():
		if _, err = bw.Commit(ctx, ocispec.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: n}); err != nil {
			_ = bw.Cancel(ctx)
		}
	default:
		_ = bw.Cancel(ctx)
	}
	if err != nil {
		return fmt.Errorf("store blob %s: %w", d, err)
	}
	return nil
}

// tap passes a download's bytes to a client streaming it. It holds back
// the blob's last byte until the blob is verified, so that a client never
// receives a whole body that failed verification; a client that goes
// away is dropped and the download goes on.
type tap struct {
	w       http.ResponseWriter
	mu      sync.Mutex
	started bool
	stopped bool  // the handler returned, or the client failed
	size    int64 // the blob's
	sent    int64 // bytes passed to w or held
	last    []byte
}

// start writes the response headers.
func (t *tap) start(d digest.Digest, size int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	h := t.w.Header()
	h.Set("Docker-Distribution-API-Version", "registry/2.0")
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Etag", `"`+d.String()+`"`)
	t.w.WriteHeader(http.StatusOK)
	t.started, t.size = true, size
}

// Write implements io.Writer; it never fails, so that the download goes
// on without the client.
func (t *tap) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped || !t.started || len(p) == 0 {
		return len(p), nil
	}
	t.sent += int64(len(p))
	out := p
	if t.sent == t.size {
		out, t.last = p[:len(p)-1], append(t.last[:0], p[len(p)-1])
	}
	if _, err := t.w.Write(out); err != nil {
		t.stopped = true
	}
	return len(p), nil
}

// finish sends the byte held back.
func (t *tap) finish() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped && t.started && len(t.last) > 0 {
		_, _ = t.w.Write(t.last)
	}
	t.last = nil
}

// stop detaches the client.
func (t *tap) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
}

// written returns how many of the blob's bytes the tap has taken,
// the one held back included.
func (t *tap) written() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sent
}

// failed reports whether writing to the client failed.
func (t *tap) failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stopped
}

// openBlob opens blob d of repository local at its source: the
// upstream, else the urls a cached manifest lists it with. size is -1
// when the upstream does not say.
func (m *mirror) openBlob(ctx context.Context, local string, d digest.Digest) (rc io.ReadCloser, size int64, foreign bool, err error) {
	up, rest := m.split(local)
	if up == nil {
		return nil, 0, false, fmt.Errorf("%w: repository %s names no upstream", errNotUpstream, local)
	}
	upErr := fmt.Errorf("%w: it cannot be reached", errUnreachable)
	if up.reachable() {
		if m.flights.elsewhere(local, d) != nil {
			// Once the upstream says this repository has the blob
			// too, read it from the other repository's download.
			if size, err := up.headBlob(ctx, rest, d); err == nil {
				if rc, n, ok := m.fromElsewhere(ctx, local, d, size); ok {
					return rc, n, false, nil
				}
			}
		}
		if rc, size, err = up.getBlob(ctx, rest, d); err == nil {
			return rc, size, false, nil
		}
		upErr = err
	}
	desc, err := m.foreignLayer(ctx, local, d)
	if err != nil {
		return nil, 0, false, upErr
	}
	h, err := ggcrv1.NewHash(d.String())
	if err != nil {
		return nil, 0, true, fmt.Errorf("%w: %w", errForeignFetch, err)
	}
	// The URL is fetched once, also across repositories.
	if rc, n, ok := m.fromElsewhere(ctx, local, d, desc.Size); ok {
		return foreignBody{rc}, n, true, nil
	}
	rc, err = m.fetcher.Open(ctx, ggcrv1.Descriptor{MediaType: "application/octet-stream", Digest: h, Size: desc.Size, URLs: desc.URLs})
	if err != nil {
		return nil, 0, true, fmt.Errorf("%w: %w", errForeignFetch, err)
	}
	return foreignBody{rc}, desc.Size, true, nil
}

// fromElsewhere reads blob d (size bytes, -1 when unknown) for
// repository local, whose upstream has it, from another repository's
// download of it: as that download fetches it (readAlong), or, once it
// has the whole blob (or has ended), from what it stores. ok is false
// when there is no such download, nor the blob stored by one.
func (m *mirror) fromElsewhere(ctx context.Context, local string, d digest.Digest, size int64) (io.ReadCloser, int64, bool) {
	if other := m.flights.elsewhere(local, d); other != nil {
		if rc, n, ok := m.readAlong(ctx, local, d, other); ok {
			if size < 0 || size == n {
				return rc, n, true
			}
			_ = rc.Close()
			return nil, 0, false
		}
		if !other.verifiedNow() || other.wait(ctx, func() bool { return other.done }) != nil {
			return nil, 0, false
		}
	}
	// Stored by another repository's download (one that ended after
	// linkHeld looked, or just now): read it there.
	if held, ok := m.heldSize(ctx, d); ok && held == size {
		if rc, err := m.driver.Reader(ctx, regstorage.BlobPath(d), 0); err == nil {
			return rc, size, true
		}
	}
	return nil, 0, false
}

// heldSize returns the size of sha256 blob d where the storage holds it
// for any repository; false when it does not.
func (m *mirror) heldSize(ctx context.Context, d digest.Digest) (int64, bool) {
	if d.Algorithm() != digest.SHA256 {
		return 0, false
	}
	fi, err := m.driver.Stat(ctx, regstorage.BlobPath(d))
	if err != nil || fi.IsDir() {
		return 0, false
	}
	return fi.Size(), true
}

// foreignBody marks a foreign fetch's read errors as such.
type foreignBody struct{ io.ReadCloser }

// checksItself says whether src verifies size and digest itself as it
// streams (blob.Verifying), as the foreign fetcher's streams do.
func checksItself(src io.Reader) bool {
	if fb, ok := src.(foreignBody); ok {
		src = fb.ReadCloser
	}
	_, ok := src.(blob.Verifying)
	return ok
}

// Read implements io.Reader.
func (b foreignBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("%w: %w", errForeignFetch, err)
	}
	return n, err
}

// getBlob GETs blob d of repository repo from the upstream.
func (u *upstream) getBlob(ctx context.Context, repo string, d digest.Digest) (io.ReadCloser, int64, error) {
	resp, err := u.blobRequest(ctx, http.MethodGet, repo, d, "", http.StatusOK)
	if err != nil {
		return nil, 0, err
	}
	return resp.Body, resp.ContentLength, nil
}

// getBlobPrefix GETs the first n bytes of blob d of repository repo from
// the upstream (a ranged GET, answered 206 with exactly those bytes).
func (u *upstream) getBlobPrefix(ctx context.Context, repo string, d digest.Digest, n int64) (io.ReadCloser, error) {
	resp, err := u.blobRequest(ctx, http.MethodGet, repo, d, fmt.Sprintf("bytes=0-%d", n-1), http.StatusPartialContent)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength != n || !strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes 0-%d/", n-1)) {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("%s answered a range of %d bytes with %d bytes (%s)", u.Name, n, resp.ContentLength, resp.Header.Get("Content-Range"))
	}
	return resp.Body, nil
}

// headBlob asks the upstream whether its repository repo holds blob d,
// and its size (-1 when the answer does not say).
func (u *upstream) headBlob(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	resp, err := u.blobRequest(ctx, http.MethodHead, repo, d, "", http.StatusOK)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.ContentLength, nil
}

// blobRequest sends a method request for blob d of repository repo to
// the upstream, with a Range header unless rng is "", and returns the
// answer when its status is want. Otherwise it closes it and returns an
// error wrapping errNotUpstream (404) or errUnreachable (no answer, or
// another status).
func (u *upstream) blobRequest(ctx context.Context, method, repo string, d digest.Digest, rng string, want int) (*http.Response, error) {
	c, base, err := u.client(ctx, repo)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUnreachable, err)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+"/v2/"+repo+"/blobs/"+d.String(), nil)
	if err != nil {
		return nil, err
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUnreachable, err)
	}
	if resp.StatusCode == want {
		return resp, nil
	}
	_ = resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("%w: %s answered %s", errNotUpstream, u.Name, resp.Status)
	}
	return nil, fmt.Errorf("%w: %s answered %s", errUnreachable, u.Name, resp.Status)
}

// blobClient is an HTTP client for one upstream repository, with its
// authentication.
type blobClient struct {
	c  *http.Client
	at time.Time
}

// client returns the HTTP client for the upstream's repository repo and
// the upstream's base URL, building it (which asks the upstream's /v2/
// for its authentication challenge, and a token) when there is none or it
// is due for new credentials. The blobs a client pulls at once share one
// build, which runs under the context of the caller that started it (a
// download's, the server's; or a late client's request's).
func (u *upstream) client(ctx context.Context, repo string) (*http.Client, string, error) {
	u.clientsMu.Lock()
	bc, ok := u.clients[repo]
	u.clientsMu.Unlock()
	if ok && time.Since(bc.at) < rebuildAfter {
		return bc.c, u.URL, nil
	}
	c, err := sharedcall.Do(ctx, &u.clientBuilds, repo, func() (*http.Client, error) { return u.buildClient(ctx, repo) })
	if err != nil {
		return nil, "", err
	}
	return c, u.URL, nil
}

// buildClient builds and keeps the client of repository repo (client).
func (u *upstream) buildClient(ctx context.Context, repo string) (*http.Client, error) {
	host := strings.TrimPrefix(strings.TrimPrefix(u.URL, "https://"), "http://")
	var opts []name.Option
	if strings.HasPrefix(u.URL, "http://") {
		opts = append(opts, name.Insecure)
	}
	r, err := name.NewRepository(host+"/"+repo, opts...)
	if err != nil {
		return nil, err
	}
	var auth authn.Authenticator = authn.Anonymous
	if user, pass := u.credentials(u.keychain); user != "" {
		auth = &authn.Basic{Username: user, Password: pass}
	}
	tr, err := transport.NewWithContext(ctx, r.Registry, auth, transport.NewUserAgent(upstreamPings.Transport(stall.Wrap(upstreamTransport, u.stall)), version.UserAgent()), []string{r.Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	bc := blobClient{c: &http.Client{Transport: tr}, at: time.Now()}
	u.clientsMu.Lock()
	defer u.clientsMu.Unlock()
	if u.clients == nil || len(u.clients) >= 1<<12 {
		u.clients = map[string]blobClient{}
	}
	u.clients[repo] = bc
	return bc.c, nil
}

// upstreamTransport carries the mirror's own requests to upstreams: a
// copy of net/http's default transport taken before the mirror gives
// that one ferry's User-Agent (userAgentDefault), with more idle
// connections kept per host (clients pull several blobs at once).
var upstreamTransport = func() http.RoundTripper {
	t, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return http.DefaultTransport
	}
	t = t.Clone()
	t.MaxIdleConnsPerHost = 16
	return t
}()
