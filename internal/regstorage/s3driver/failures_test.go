package s3driver

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
)

// faultyClient fails the S3 requests of one operation (the x-id the SDK
// puts in their query, such as "GetObject"): fail has the real response,
// or none when it returns before sending.
type faultyClient struct {
	next s3.HTTPClient
	op   string
	fail func(c s3.HTTPClient, r *http.Request) (*http.Response, error)
}

func (c faultyClient) Do(r *http.Request) (*http.Response, error) {
	if r.URL.Query().Get("x-id") != c.op {
		return c.next.Do(r)
	}
	return c.fail(c.next, r)
}

// testDrivers returns a driver on the test S3 server, and the same driver
// (same parameters, same root) whose requests of operation op fail as fail
// says (with fail nil, the same driver without base.Base around it).
func testDrivers(t *testing.T, op string, fail func(s3.HTTPClient, *http.Request) (*http.Response, error)) (storagedriver.StorageDriver, *driver) {
	t.Helper()
	params := testParams(t)
	ctx := context.Background()
	d, err := factory.Create(ctx, DriverName, params)
	if err != nil {
		t.Fatal(err)
	}
	p, err := parseParameters(params)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := newDriver(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if fail != nil {
		fd.client = s3.New(fd.client.Options(), func(o *s3.Options) {
			o.HTTPClient = faultyClient{next: o.HTTPClient, op: op, fail: fail}
		})
	}
	return d, fd
}

// uploads returns the keys of the multipart uploads in progress under
// dir.
func uploads(t *testing.T, d *driver, dir string) []string {
	t.Helper()
	var keys []string
	pages := s3.NewListMultipartUploadsPaginator(d.client, &s3.ListMultipartUploadsInput{
		Bucket: aws.String(d.p.bucket), Prefix: aws.String(d.dirPrefix(dir)),
	})
	for pages.HasMorePages() {
		out, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range out.Uploads {
			keys = append(keys, aws.ToString(u.Key))
		}
	}
	return keys
}

// errAfter reads r, then fails.
type errAfter struct{ r io.Reader }

func (e errAfter) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, errors.New("injected: connection reset")
	}
	return n, err
}

// TestRestartReadFails: resuming an upload whose last part is below S3's
// minimum completes it and reads the object back into a new upload; when
// that read fails halfway, the new upload is aborted and nothing (stale
// or half-read bytes) is uploaded by Close.
func TestRestartReadFails(t *testing.T) {
	d, fd := testDrivers(t, "GetObject", func(c s3.HTTPClient, r *http.Request) (*http.Response, error) {
		resp, err := c.Do(r)
		if err == nil {
			resp.Body = struct {
				io.Reader
				io.Closer
			}{errAfter{io.LimitReader(resp.Body, 50)}, resp.Body}
		}
		return resp, err
	})
	ctx := context.Background()
	const path = "/restart/_uploads/u/data"
	t.Cleanup(func() { _ = d.Delete(ctx, "/restart") })
	first := make([]byte, 100)
	_, _ = rand.Read(first)
	w, err := d.Writer(ctx, path, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(first); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	fw, err := fd.Writer(ctx, path, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write([]byte("more")); err == nil {
		t.Fatal("Write after a failed read of the upload: no error")
	}
	_ = fw.Close()
	if keys := uploads(t, fd, "/restart"); len(keys) != 0 {
		t.Errorf("uploads left in progress after the failed restart: %q", keys)
	}
	if got, err := d.GetContent(ctx, path); err != nil || !bytes.Equal(got, first) {
		t.Errorf("object: %d bytes, %v; want the %d first written", len(got), err, len(first))
	}
}

// TestDeleteAbortsUploads: Delete aborts multipart uploads under the
// path as well as deleting its objects, and leaves a sibling's; a path
// with only an upload is aborted and not found.
func TestDeleteAbortsUploads(t *testing.T) {
	d, fd := testDrivers(t, "", nil)
	ctx := context.Background()
	t.Cleanup(func() { _ = d.Delete(ctx, "/del") })
	for _, p := range []string{"/del/a/_uploads/u/data", "/del/b/data", "/del/a-x/data"} {
		w, err := d.Writer(ctx, p, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("part")); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.PutContent(ctx, "/del/a/_uploads/u/startedat", []byte("now")); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "/del/a"); err != nil {
		t.Fatalf("Delete /del/a: %v", err)
	}
	if err := d.Delete(ctx, "/del/b"); !errors.As(err, new(storagedriver.PathNotFoundError)) {
		t.Errorf("Delete /del/b (only an upload): %v, want PathNotFoundError", err)
	}
	if got, want := uploads(t, fd, "/del"), []string{fd.key("/del/a-x/data")}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("uploads after Delete: %q, want %q", got, want)
	}
	if err := d.Delete(ctx, "/del"); !errors.As(err, new(storagedriver.PathNotFoundError)) {
		t.Errorf("Delete /del (only an upload left): %v, want PathNotFoundError", err)
	}
	if got := uploads(t, fd, "/del"); len(got) != 0 {
		t.Errorf("uploads after Delete /del: %q", got)
	}
}

// clientFunc is an s3.HTTPClient made of a function.
type clientFunc func(*http.Request) (*http.Response, error)

func (f clientFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

// TestDeleteRetriesCutAnswers: a DeleteObjects whose answer is cut after
// the status line, as radosgw's sometimes is, on every SDK attempt of a
// first call, is sent again and the delete succeeds; an API error is not
// retried.
func TestDeleteRetriesCutAnswers(t *testing.T) {
	var calls atomic.Int32
	d, fd := testDrivers(t, "", nil)
	next := fd.client.Options().HTTPClient
	fd.client = s3.New(fd.client.Options(), func(o *s3.Options) {
		o.HTTPClient = clientFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := next.Do(r)
			if err != nil || r.Method != http.MethodPost || !r.URL.Query().Has("delete") {
				return resp, err
			}
			if calls.Add(1) > 3 { // the SDK's three attempts of the first call
				return resp, err
			}
			resp.Body.Close()
			resp.Body = io.NopCloser(errAfter{r: strings.NewReader("")}) // as "use of closed network connection"
			return resp, nil
		})
	})
	ctx := context.Background()
	if err := d.PutContent(ctx, "/cut/a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := fd.Delete(ctx, "/cut"); err != nil {
		t.Fatalf("Delete with cut answers: %v", err)
	}
	if n := calls.Load(); n != 4 {
		t.Errorf("%d DeleteObjects requests, want 3 cut and 1 answered", n)
	}
	if _, err := d.Stat(ctx, "/cut/a"); !errors.As(err, new(storagedriver.PathNotFoundError)) {
		t.Errorf("Stat after Delete: %v, want PathNotFoundError", err)
	}
}

// TestCommitEmptyPutFails: when the empty object of a commit of nothing
// cannot be put, the upload is still there to resume and commit.
func TestCommitEmptyPutFails(t *testing.T) {
	d, fd := testDrivers(t, "PutObject", func(s3.HTTPClient, *http.Request) (*http.Response, error) {
		return nil, errors.New("injected: no PutObject")
	})
	ctx := context.Background()
	const path = "/empty/_uploads/u/data"
	t.Cleanup(func() { _ = d.Delete(ctx, "/empty") })
	fw, err := fd.Writer(ctx, path, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.Commit(ctx); err == nil {
		t.Fatal("Commit with PutObject failing: no error")
	}
	_ = fw.Close()
	w, err := d.Writer(ctx, path, true)
	if err != nil {
		t.Fatalf("resuming after the failed commit: %v", err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := d.Stat(ctx, path); err != nil || fi.Size() != 0 || fi.IsDir() {
		t.Errorf("Stat: %v, %v", fi, err)
	}
	if keys := uploads(t, fd, "/empty"); len(keys) != 0 {
		t.Errorf("uploads left in progress: %q", keys)
	}
}

// TestMoveOntoItself: Move(p, p) leaves p as it is.
func TestMoveOntoItself(t *testing.T) {
	d, _ := testDrivers(t, "", nil)
	ctx := context.Background()
	t.Cleanup(func() { _ = d.Delete(ctx, "/mv") })
	if err := d.PutContent(ctx, "/mv/f", []byte("content")); err != nil {
		t.Fatal(err)
	}
	if err := d.Move(ctx, "/mv/f", "/mv/f"); err != nil {
		t.Errorf("Move onto itself: %v", err)
	}
	if got, err := d.GetContent(ctx, "/mv/f"); err != nil || string(got) != "content" {
		t.Errorf("after Move onto itself: %q, %v", got, err)
	}
	if err := d.Move(ctx, "/mv/none", "/mv/none"); !errors.As(err, new(storagedriver.PathNotFoundError)) {
		t.Errorf("Move of nothing onto itself: %v, want PathNotFoundError", err)
	}
}

// TestFirstBufferSmall: a new upload starts with a small buffer, not a
// whole chunk, and only full-size buffers are pooled.
func TestFirstBufferSmall(t *testing.T) {
	p, err := parseParameters(map[string]any{"bucket": "b", "region": "r", "accesskey": "k", "secretkey": "s"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := newDriver(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	w := d.newWriter(context.Background(), "k", "id", nil)
	w.grow()
	if cap(w.buf) != firstBufSize {
		t.Fatalf("first buffer: %d bytes, want %d", cap(w.buf), firstBufSize)
	}
	w.release()
	if b, ok := d.bufs.Get().(*[]byte); ok && int64(cap(*b)) != p.chunkSize {
		t.Errorf("pooled a buffer of %d bytes, chunksize %d", cap(*b), p.chunkSize)
	}
}

// TestSecureFalseHTTPSEndpoint: secure: false does not turn an https://
// regionendpoint into http://; it only chooses the scheme of an endpoint
// given without one.
func TestSecureFalseHTTPSEndpoint(t *testing.T) {
	var heads int
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			heads++
			w.Header().Set("Content-Length", "3")
		}
	}))
	defer srv.Close()
	d, err := factory.Create(context.Background(), DriverName, map[string]any{
		"bucket": "b", "regionendpoint": srv.URL, "secure": false, "skipverify": true,
		"forcepathstyle": true, "accesskey": "k", "secretkey": "s",
	})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := d.Stat(context.Background(), "/f")
	if err != nil || heads != 1 || fi.Size() != 3 {
		t.Errorf("Stat over %s with secure false: %v, %v (%d HEAD requests)", srv.URL, fi, err, heads)
	}
}

// TestErrorsNameDriverOnce: an S3 error reads "s3: <operation> bucket B
// key K: ...", the driver named once, by base.Base for the driver's
// methods and by the writer for its own.
func TestErrorsNameDriverOnce(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	}))
	defer srv.Close()
	ctx := context.Background()
	d, err := factory.Create(ctx, DriverName, map[string]any{
		"bucket": "b", "regionendpoint": srv.URL, "forcepathstyle": true, "accesskey": "k", "secretkey": "s",
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.GetContent(ctx, "/f")
	if err == nil || !strings.HasPrefix(err.Error(), "s3: get bucket b key f: ") || strings.Contains(err.Error(), "s3: s3") {
		t.Errorf("GetContent: %v", err)
	}
	p, err := parseParameters(map[string]any{"bucket": "b", "region": "r", "accesskey": "k", "secretkey": "s"})
	if err != nil {
		t.Fatal(err)
	}
	inner, err := newDriver(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	w := inner.newWriter(ctx, "f", "id", nil)
	_ = w.Close()
	if _, err := w.Write([]byte("x")); err == nil || err.Error() != "s3: writer already closed" {
		t.Errorf("Write after Close: %v", err)
	}
}
