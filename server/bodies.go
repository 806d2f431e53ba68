package server

import (
	"io"
	"net/http"

	"github.com/ferry-dev/ferry/blob"
)

// largeReads hands distribution every upload body as a reader with a
// WriteTo, so that io.Copy in its blob handlers moves the bytes in
// blob.Copy's large steps: without it, distribution's blob writer reads
// the body, writes the file and feeds the digest in io.Copy's 32 KiB
// steps, two system calls per 32 KiB of a gigabyte layer.
//
// The blob writer's Write, unlike its ReadFrom, re-checks before every
// call that its digest state is at the storage writer's Size, so it is
// only safe on drivers whose Size counts the bytes they still buffer:
// see largeWritesSafe.
func largeReads(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodPut || r.Method == http.MethodPatch) && r.Body != nil && r.Body != http.NoBody {
			r.Body = largeBody{r.Body}
		}
		next.ServeHTTP(w, r)
	})
}

// largeBody is a request body that copies itself out in large steps.
type largeBody struct{ io.ReadCloser }

// WriteTo implements io.WriterTo.
func (b largeBody) WriteTo(w io.Writer) (int64, error) { return blob.Copy(w, b.ReadCloser) }

// largeWritesSafe says whether the storage driver type counts buffered
// bytes in its writers' Size, as distribution's filesystem driver and
// ferry's S3 driver (internal/regstorage/s3driver) do. distribution's in-memory
// driver does not (its Size lags until a flush), and the blob writer
// would restart the digest mid-blob: DIGEST_INVALID.
func largeWritesSafe(driver string) bool {
	return driver == "filesystem" || driver == "s3"
}
