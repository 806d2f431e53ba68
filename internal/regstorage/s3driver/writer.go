package s3driver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// firstBufSize is the buffer a new upload starts with; it grows, by
// doubling, to chunksize as data comes, so that small blobs do not take a
// whole chunk of memory.
const firstBufSize = 256 << 10

// errClosed, errCommitted and errCancelled are the errors of a writer
// used after Close, Commit or Cancel.
var (
	errClosed    = errors.New("writer already closed")
	errCommitted = errors.New("writer already committed")
	errCancelled = errors.New("writer already cancelled")
)

// part is one uploaded part of a multipart upload.
type part struct {
	number int32
	etag   string
	size   int64
}

// Writer implements storagedriver.StorageDriver with a multipart upload,
// a part per chunksize bytes written. Close uploads what is buffered as a
// part of its own, possibly smaller than S3's minimum, so that the upload
// can go on from another process: Writer with append resumes the path's
// multipart upload (the newest, if there are several), as distribution
// does for an upload sent in several requests, perhaps to several
// replicas.
func (d *driver) Writer(ctx context.Context, path string, appendMode bool) (storagedriver.FileWriter, error) {
	key := d.key(path)
	if !appendMode {
		id, err := d.createMultipart(ctx, key)
		if err != nil {
			return nil, err
		}
		return d.newWriter(ctx, key, id, nil), nil
	}
	id, err := d.findUpload(ctx, key)
	if err != nil {
		return nil, err
	}
	if id == "" {
		// No upload in progress: only an empty committed file may be
		// appended to, which the new upload replaces.
		fi, err := d.head(ctx, path)
		if err != nil {
			return nil, err
		}
		if fi.Size() != 0 {
			return nil, fmt.Errorf("bucket %s key %s: appending to a committed file (%d bytes) is not supported", d.p.bucket, key, fi.Size())
		}
		if id, err = d.createMultipart(ctx, key); err != nil {
			return nil, err
		}
		return d.newWriter(ctx, key, id, nil), nil
	}
	parts, err := d.listParts(ctx, key, id)
	if err != nil {
		return nil, err
	}
	return d.newWriter(ctx, key, id, parts), nil
}

// findUpload returns the ID of the newest multipart upload in progress to
// key, or "".
func (d *driver) findUpload(ctx context.Context, key string) (string, error) {
	var (
		id     string
		newest types.MultipartUpload
	)
	pages := s3.NewListMultipartUploadsPaginator(d.client, &s3.ListMultipartUploadsInput{Bucket: aws.String(d.p.bucket), Prefix: aws.String(key)})
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return "", d.errorf("list multipart uploads", key, err)
		}
		for _, u := range out.Uploads {
			if aws.ToString(u.Key) != key {
				// Uploads come ordered by key, and key is the first with
				// its prefix: once another key comes, there are no more.
				return id, nil
			}
			if id == "" || !aws.ToTime(u.Initiated).Before(aws.ToTime(newest.Initiated)) {
				id, newest = aws.ToString(u.UploadId), u
			}
		}
	}
	return id, nil
}

// listParts returns the parts of upload uploadID of key, in order.
func (d *driver) listParts(ctx context.Context, key, uploadID string) ([]part, error) {
	var parts []part
	pages := s3.NewListPartsPaginator(d.client, &s3.ListPartsInput{
		Bucket:   aws.String(d.p.bucket),
		Key:      aws.String(key),
		UploadId: aws.String(uploadID),
	})
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return nil, d.errorf("list parts of upload "+uploadID+" to", key, err)
		}
		for _, p := range out.Parts {
			parts = append(parts, part{number: aws.ToInt32(p.PartNumber), etag: aws.ToString(p.ETag), size: aws.ToInt64(p.Size)})
		}
	}
	slices.SortFunc(parts, func(a, b part) int { return int(a.number - b.number) })
	return parts, nil
}

// complete completes upload uploadID of key with parts, which are in
// order: listParts sorts them, and a writer and copyParts number them in
// order.
func (d *driver) complete(ctx context.Context, key, uploadID string, parts []part) error {
	completed := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		completed[i] = types.CompletedPart{ETag: aws.String(p.etag), PartNumber: aws.Int32(p.number)}
	}
	_, err := d.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(d.p.bucket),
		Key:             aws.String(key),
		UploadId:        aws.String(uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: completed},
	})
	if err != nil {
		return d.errorf(fmt.Sprintf("complete upload %s (%d parts) to", uploadID, len(parts)), key, err)
	}
	return nil
}

// abort aborts upload uploadID of key.
func (d *driver) abort(ctx context.Context, key, uploadID string) error {
	_, err := d.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket:   aws.String(d.p.bucket),
		Key:      aws.String(key),
		UploadId: aws.String(uploadID),
	})
	if err != nil {
		return d.errorf("abort upload "+uploadID+" to", key, err)
	}
	return nil
}

// writer is a storagedriver.FileWriter on a multipart upload. Every part
// but the last is chunksize bytes (or, after a resume, at least S3's
// minimum); buf holds what is written until it fills a part.
type writer struct {
	ctx      context.Context
	d        *driver
	key      string
	uploadID string
	parts    []part
	// size is every byte written: in parts and in buf.
	size int64
	buf  []byte
	// err is why the writer can go no further: a restart that completed
	// the upload but could not start its replacement. Write and Commit
	// return it, and Close has nothing to upload.
	err error

	closed, committed, cancelled bool
}

// newWriter returns a writer on upload uploadID of key, which has parts.
func (d *driver) newWriter(ctx context.Context, key, uploadID string, parts []part) *writer {
	w := &writer{ctx: ctx, d: d, key: key, uploadID: uploadID, parts: parts}
	for _, p := range parts {
		w.size += p.size
	}
	return w
}

// Write implements io.Writer (write), its errors naming the driver.
func (w *writer) Write(p []byte) (int, error) {
	n, err := w.write(p)
	return n, named(err)
}

// Close implements io.Closer (close), its errors naming the driver.
func (w *writer) Close() error { return named(w.close()) }

// Cancel implements storagedriver.FileWriter (cancel), its errors naming
// the driver.
func (w *writer) Cancel(ctx context.Context) error { return named(w.cancel(ctx)) }

// Commit implements storagedriver.FileWriter (commit), its errors naming
// the driver.
func (w *writer) Commit(ctx context.Context) error { return named(w.commit(ctx)) }

// done returns why w may not be written to, or nil.
func (w *writer) done() error {
	switch {
	case w.closed:
		return errClosed
	case w.committed:
		return errCommitted
	case w.cancelled:
		return errCancelled
	case w.err != nil:
		return w.err
	}
	return nil
}

// write uploads a part whenever chunksize bytes are buffered.
func (w *writer) write(p []byte) (int, error) {
	if err := w.done(); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if n := len(w.parts); n > 0 && w.parts[n-1].size < minChunkSize {
		if err := w.restart(); err != nil {
			return 0, err
		}
	}
	written := 0
	for len(p) > 0 {
		w.grow()
		c := min(cap(w.buf)-len(w.buf), len(p))
		w.buf = append(w.buf, p[:c]...)
		p = p[c:]
		written += c
		w.size += int64(c)
		if int64(len(w.buf)) == w.d.p.chunkSize {
			if err := w.flush(w.ctx); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// grow makes room in buf: a full-size buffer from the driver's pool, or
// one twice the size, up to chunksize.
func (w *writer) grow() {
	chunk := int(w.d.p.chunkSize)
	switch {
	case w.buf == nil:
		w.buf = w.d.newBuf(1)
	case len(w.buf) == cap(w.buf) && cap(w.buf) < chunk:
		b := make([]byte, len(w.buf), min(chunk, 2*cap(w.buf)))
		copy(b, w.buf)
		w.buf = b
	}
}

// newBuf returns an empty upload buffer with room for n bytes, n at most
// chunksize: a full-size one from the pool if there is one, else the
// smallest of firstBufSize and its doublings up to chunksize that holds n.
func (d *driver) newBuf(n int) []byte {
	if b, ok := d.bufs.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	chunk := int(d.p.chunkSize)
	c := min(chunk, firstBufSize)
	for c < n {
		c = min(chunk, 2*c)
	}
	return make([]byte, 0, c)
}

// putBuf returns b to the pool if it is full-size; a smaller one is left
// to the garbage collector, so that the pool holds only buffers newBuf
// may hand out for any upload.
func (d *driver) putBuf(b []byte) {
	if int64(cap(b)) == d.p.chunkSize {
		b = b[:0]
		d.bufs.Put(&b)
	}
}

// release returns buf to the driver's pool if it is full-size.
func (w *writer) release() {
	if w.buf != nil {
		w.d.putBuf(w.buf)
	}
	w.buf = nil
}

// restart replaces an upload whose last part is smaller than S3's minimum,
// which no part may follow, with a new one holding the same bytes: it
// completes the upload, starts another and copies the object into it
// (at least the minimum: as parts, on the server; less: into buf). The
// writer changes only once all of that has succeeded. Once the upload is
// completed it cannot be continued: if its replacement fails, that is
// aborted and the writer fails from then on (w.err), holding nothing to
// upload.
func (w *writer) restart() error {
	if err := w.d.complete(w.ctx, w.key, w.uploadID, w.parts); err != nil {
		return err
	}
	id, parts, buf, err := w.reupload()
	if err != nil {
		w.err = err
		return err
	}
	w.release()
	w.uploadID, w.parts, w.buf = id, parts, buf
	return nil
}

// reupload starts a new multipart upload to the writer's key holding the
// object's w.size bytes: as parts copied on the server, or, below S3's
// minimum part, as the bytes to buffer. If any step fails, the new upload
// is aborted and no buffer returned.
func (w *writer) reupload() (id string, parts []part, buf []byte, err error) {
	id, err = w.d.createMultipart(w.ctx, w.key)
	if err != nil {
		return "", nil, nil, err
	}
	defer func() {
		if err == nil {
			return
		}
		if buf != nil {
			w.d.putBuf(buf)
		}
		if aerr := w.d.abort(context.WithoutCancel(w.ctx), w.key, id); aerr != nil {
			err = errors.Join(err, aerr)
		}
		id, parts, buf = "", nil, nil
	}()
	if w.size >= minChunkSize {
		// As few parts as S3's largest allows, of equal size, so that none
		// is below the minimum.
		n := (w.size + maxChunkSize - 1) / maxChunkSize
		parts, err = w.d.copyParts(w.ctx, w.key, w.key, id, w.size, (w.size+n-1)/n, int(w.d.p.copyMaxConcurrency))
		return id, parts, nil, err
	}
	out, err := w.d.client.GetObject(w.ctx, &s3.GetObjectInput{Bucket: aws.String(w.d.p.bucket), Key: aws.String(w.key)})
	if err != nil {
		return id, nil, nil, w.d.errorf("get to resume", w.key, err)
	}
	defer out.Body.Close()
	buf = w.d.newBuf(int(w.size))[:w.size]
	if _, err := io.ReadFull(out.Body, buf); err != nil {
		return id, nil, buf, w.d.errorf("get to resume", w.key, err)
	}
	return id, nil, buf, nil
}

// flush uploads buf as the next part.
func (w *writer) flush(ctx context.Context) error {
	if len(w.buf) == 0 {
		return nil
	}
	num := int32(1)
	if n := len(w.parts); n > 0 {
		num = w.parts[n-1].number + 1
	}
	out, err := w.d.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket:        aws.String(w.d.p.bucket),
		Key:           aws.String(w.key),
		UploadId:      aws.String(w.uploadID),
		PartNumber:    aws.Int32(num),
		Body:          bytes.NewReader(w.buf),
		ContentLength: aws.Int64(int64(len(w.buf))),
	})
	if err != nil {
		return w.d.errorf(fmt.Sprintf("upload part %d (%d bytes) of upload %s to", num, len(w.buf), w.uploadID), w.key, err)
	}
	w.parts = append(w.parts, part{number: num, etag: aws.ToString(out.ETag), size: int64(len(w.buf))})
	w.buf = w.buf[:0]
	return nil
}

// Size implements storagedriver.FileWriter: every byte written, in this
// writer and before a resume.
func (w *writer) Size() int64 { return w.size }

// close uploads what is buffered as a part, leaving the upload to be
// resumed or committed, unless it is committed or cancelled already.
func (w *writer) close() error {
	if w.closed {
		return errClosed
	}
	w.closed = true
	defer w.release()
	if w.committed || w.cancelled || w.err != nil {
		return nil
	}
	return w.flush(w.ctx)
}

// cancel aborts the upload.
func (w *writer) cancel(ctx context.Context) error {
	if err := w.done(); err != nil {
		return err
	}
	w.cancelled = true
	w.release()
	return w.d.abort(ctx, w.key, w.uploadID)
}

// commit uploads what is buffered and completes the upload, making the
// object. Nothing written makes an empty object (S3 refuses an upload of
// no parts).
func (w *writer) commit(ctx context.Context) error {
	if err := w.done(); err != nil {
		return err
	}
	if err := w.flush(ctx); err != nil {
		return err
	}
	w.committed = true
	w.release()
	if len(w.parts) == 0 {
		// The empty object first: should it fail, the upload is left to
		// be resumed and committed again.
		in := w.d.putInput(w.key)
		in.Body, in.ContentLength = bytes.NewReader(nil), aws.Int64(0)
		if _, err := w.d.client.PutObject(ctx, in); err != nil {
			return w.d.errorf("put empty", w.key, err)
		}
		// The object is made. An upload that fails to abort holds no
		// parts, and Delete of its directory (as distribution does once
		// the blob is moved) aborts it.
		_ = w.d.abort(ctx, w.key, w.uploadID)
		return nil
	}
	if err := w.d.complete(ctx, w.key, w.uploadID, w.parts); err != nil {
		// As the s3-aws driver does: a failed upload is not left to
		// take space in the bucket.
		if aerr := w.d.abort(ctx, w.key, w.uploadID); aerr != nil {
			return errors.Join(err, aerr)
		}
		return err
	}
	return nil
}
