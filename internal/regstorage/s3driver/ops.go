package s3driver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyendpoints "github.com/aws/smithy-go/endpoints"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-dev/ferry/internal/wait"
)

// redirectExpiry is how long a redirect URL is valid, as with the s3-aws
// driver.
const redirectExpiry = 20 * time.Minute

// isNotFound reports whether err is S3's answer for a missing object:
// NoSuchKey (GET), NotFound (HEAD, which has no body), or a 404 with no
// S3 error code at all. A 404 naming another code, such as NoSuchBucket,
// is not.
func isNotFound(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		return code == "NoSuchKey" || code == "NotFound"
	}
	return httpStatus(err) == http.StatusNotFound
}

// isInvalidRange reports whether err is S3's answer for a Range at or
// beyond the end of an object.
func isInvalidRange(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange" {
		return true
	}
	return httpStatus(err) == http.StatusRequestedRangeNotSatisfiable
}

// isForbidden reports whether err is an HTTP 403.
func isForbidden(err error) bool {
	return httpStatus(err) == http.StatusForbidden
}

// httpStatus is the HTTP status of a failed S3 request, or 0.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// failed is the error of operation op on the object at path: the
// driver's PathNotFoundError for a missing object, else err naming the
// bucket and key.
func (d *driver) failed(op, path string, err error) error {
	if isNotFound(err) {
		return storagedriver.PathNotFoundError{Path: path, DriverName: DriverName}
	}
	return d.errorf(op, d.key(path), err)
}

// GetContent implements storagedriver.StorageDriver.
func (d *driver) GetContent(ctx context.Context, path string) ([]byte, error) {
	key := d.key(path)
	out, err := d.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(d.p.bucket), Key: aws.String(key)})
	if err != nil {
		return nil, d.failed("get", path, err)
	}
	defer out.Body.Close()
	var buf bytes.Buffer
	if n := aws.ToInt64(out.ContentLength); n > 0 && n < 1<<30 {
		buf.Grow(int(n))
	}
	if _, err := buf.ReadFrom(out.Body); err != nil {
		return nil, d.errorf("get", key, err)
	}
	return buf.Bytes(), nil
}

// PutContent implements storagedriver.StorageDriver.
func (d *driver) PutContent(ctx context.Context, path string, content []byte) error {
	key := d.key(path)
	in := d.putInput(key)
	in.Body = bytes.NewReader(content)
	in.ContentLength = aws.Int64(int64(len(content)))
	if _, err := d.client.PutObject(ctx, in); err != nil {
		return d.errorf("put", key, err)
	}
	return nil
}

// Reader implements storagedriver.StorageDriver with a ranged GET. At the
// end of the object it returns an empty reader, beyond it an
// InvalidOffsetError.
func (d *driver) Reader(ctx context.Context, path string, offset int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, storagedriver.InvalidOffsetError{Path: path, Offset: offset, DriverName: DriverName}
	}
	key := d.key(path)
	in := &s3.GetObjectInput{Bucket: aws.String(d.p.bucket), Key: aws.String(key)}
	if offset > 0 {
		in.Range = aws.String("bytes=" + strconv.FormatInt(offset, 10) + "-")
	}
	out, err := d.client.GetObject(ctx, in)
	switch {
	case err == nil:
		return out.Body, nil
	case !isInvalidRange(err):
		return nil, d.failed("get", path, err)
	}
	// The offset is at or past the end: which one is for the object's
	// size to say.
	fi, err := d.head(ctx, path)
	if err != nil {
		return nil, err
	}
	if offset > fi.Size() {
		return nil, storagedriver.InvalidOffsetError{Path: path, Offset: offset, DriverName: DriverName}
	}
	return io.NopCloser(bytes.NewReader(nil)), nil
}

// head stats the object at path.
func (d *driver) head(ctx context.Context, path string) (storagedriver.FileInfo, error) {
	key := d.key(path)
	out, err := d.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(d.p.bucket), Key: aws.String(key)})
	if err != nil {
		return nil, d.failed("head", path, err)
	}
	return storagedriver.FileInfoInternal{FileInfoFields: storagedriver.FileInfoFields{
		Path:    path,
		Size:    aws.ToInt64(out.ContentLength),
		ModTime: aws.ToTime(out.LastModified),
	}}, nil
}

// Stat implements storagedriver.StorageDriver: an object is a file; a
// path with objects under it (path + "/") a directory.
func (d *driver) Stat(ctx context.Context, path string) (storagedriver.FileInfo, error) {
	if d.key(path) != "" && !strings.HasSuffix(d.key(path), "/") {
		fi, err := d.head(ctx, path)
		var nf storagedriver.PathNotFoundError
		// A 403 may be a missing object to a principal that may list but
		// not read: the listing decides.
		if err == nil || !(errors.As(err, &nf) || isForbidden(err)) {
			return fi, err
		}
	}
	prefix := d.dirPrefix(path)
	out, err := d.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket:  aws.String(d.p.bucket),
		Prefix:  aws.String(prefix),
		MaxKeys: aws.Int32(1),
	})
	if err != nil {
		return nil, d.errorf("list", prefix, err)
	}
	if len(out.Contents) == 0 && len(out.CommonPrefixes) == 0 {
		return nil, storagedriver.PathNotFoundError{Path: path, DriverName: DriverName}
	}
	return storagedriver.FileInfoInternal{FileInfoFields: storagedriver.FileInfoFields{Path: path, IsDir: true}}, nil
}

// List implements storagedriver.StorageDriver: the files and directories
// directly under path. A path with nothing under it is not found, but for
// the root.
func (d *driver) List(ctx context.Context, path string) ([]string, error) {
	prefix := d.dirPrefix(path)
	var files, dirs []string
	pages := s3.NewListObjectsV2Paginator(d.client, &s3.ListObjectsV2Input{
		Bucket:    aws.String(d.p.bucket),
		Prefix:    aws.String(prefix),
		Delimiter: aws.String("/"),
		MaxKeys:   aws.Int32(listMax),
	})
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return nil, d.errorf("list", prefix, err)
		}
		for _, o := range out.Contents {
			if k := aws.ToString(o.Key); k != prefix { // a directory marker
				files = append(files, d.path(k))
			}
		}
		for _, cp := range out.CommonPrefixes {
			dirs = append(dirs, d.path(strings.TrimSuffix(aws.ToString(cp.Prefix), "/")))
		}
	}
	if len(files)+len(dirs) == 0 && path != "/" {
		return nil, storagedriver.PathNotFoundError{Path: path, DriverName: DriverName}
	}
	return append(files, dirs...), nil
}

// Move implements storagedriver.StorageDriver: a server-side copy, in
// parts above the multipart copy threshold, then a delete of the source.
// A move onto itself only checks the source exists.
func (d *driver) Move(ctx context.Context, sourcePath, destPath string) error {
	fi, err := d.head(ctx, sourcePath)
	if err != nil {
		return err
	}
	src, dst := d.key(sourcePath), d.key(destPath)
	if src == dst {
		return nil
	}
	if fi.Size() <= d.p.copyThresholdSize {
		in := d.putInput(dst)
		_, err = d.client.CopyObject(ctx, &s3.CopyObjectInput{
			Bucket: in.Bucket, Key: in.Key, CopySource: aws.String(d.copySource(src)), ContentType: in.ContentType, ACL: in.ACL,
			ServerSideEncryption: in.ServerSideEncryption, SSEKMSKeyId: in.SSEKMSKeyId, StorageClass: in.StorageClass,
		})
		if err != nil {
			return d.errorf("copy to "+dst+" from", src, err)
		}
	} else if err := d.copyMultipart(ctx, src, dst, fi.Size()); err != nil {
		return err
	}
	if _, err := d.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(d.p.bucket), Key: aws.String(src)}); err != nil {
		return d.errorf("delete moved", src, err)
	}
	return nil
}

// copyMultipart copies size bytes of object src to dst in parts of
// multipartcopychunksize, multipartcopymaxconcurrency at a time.
func (d *driver) copyMultipart(ctx context.Context, src, dst string, size int64) error {
	uploadID, err := d.createMultipart(ctx, dst)
	if err != nil {
		return err
	}
	parts, err := d.copyParts(ctx, src, dst, uploadID, size, d.p.copyChunkSize, int(d.p.copyMaxConcurrency))
	if err == nil {
		err = d.complete(ctx, dst, uploadID, parts)
	}
	if err != nil {
		if aerr := d.abort(ctx, dst, uploadID); aerr != nil {
			return errors.Join(err, aerr)
		}
		return err
	}
	return nil
}

// copyParts copies object src, size bytes, into upload uploadID of dst as
// parts 1, 2, ... of partSize bytes (the last smaller), concurrency at a
// time, and returns them. The first failure stops the rest.
func (d *driver) copyParts(ctx context.Context, src, dst, uploadID string, size, partSize int64, concurrency int) ([]part, error) {
	n := (size + partSize - 1) / partSize
	parts := make([]part, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			from := i * partSize
			to := min(from+partSize, size) - 1
			num := int32(i) + 1
			out, err := d.client.UploadPartCopy(gctx, &s3.UploadPartCopyInput{
				Bucket:          aws.String(d.p.bucket),
				Key:             aws.String(dst),
				CopySource:      aws.String(d.copySource(src)),
				CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", from, to)),
				PartNumber:      aws.Int32(num),
				UploadId:        aws.String(uploadID),
			})
			if err != nil {
				return d.errorf(fmt.Sprintf("copy part %d (bytes %d-%d) of %s to", num, from, to, src), dst, err)
			}
			var etag *string
			if out.CopyPartResult != nil {
				etag = out.CopyPartResult.ETag
			}
			parts[i] = part{number: num, etag: aws.ToString(etag), size: to - from + 1}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// Cancelled before every part was started, none failing.
	return parts, ctx.Err()
}

// A DeleteObjects whose answer never arrives whole (the connection cut
// after the status line: seen with Ceph's radosgw 16 on loopback, three
// SDK attempts in a row on one pool of dead keep-alive connections) is
// sent again a few times, waiting between: deleting keys is idempotent.
// An answer S3 gave (an API error) is final.
const deleteTries = 4

var deleteBackoff = wait.Backoff{Base: 200 * time.Millisecond, Max: 2 * time.Second}

// deleteObjects is DeleteObjects, sent again while no answer arrives.
func (d *driver) deleteObjects(ctx context.Context, in *s3.DeleteObjectsInput) (*s3.DeleteObjectsOutput, error) {
	for try := 1; ; try++ {
		out, err := d.client.DeleteObjects(ctx, in)
		var ae smithy.APIError
		if err == nil || try == deleteTries || errors.As(err, &ae) || ctx.Err() != nil {
			return out, err
		}
		if werr := deleteBackoff.Wait(ctx, try, nil); werr != nil {
			return nil, errors.Join(err, werr)
		}
	}
}

// Delete implements storagedriver.StorageDriver: the object at path and
// every object under path + "/", in batches of 1000; not "/a/bc" for
// "/a/b". Multipart uploads in progress there are aborted first, so that
// removing an upload's directory (distribution's cancel and purge of
// uploads) leaves none of their parts behind. No object there is
// PathNotFoundError, even if uploads were aborted: an upload not
// committed is no file.
func (d *driver) Delete(ctx context.Context, path string) error {
	key := d.key(path)
	sub := key + "/"
	if err := d.abortUploads(ctx, key, sub); err != nil {
		return err
	}
	batch := make([]types.ObjectIdentifier, 0, listMax)
	found := false
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		out, err := d.deleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(d.p.bucket),
			Delete: &types.Delete{Objects: batch, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return d.errorf(fmt.Sprintf("delete %d objects from", len(batch)), key, err)
		}
		if len(out.Errors) > 0 {
			errs := make([]error, 0, len(out.Errors))
			for _, e := range out.Errors {
				errs = append(errs, fmt.Errorf("delete bucket %s key %s: %s: %s", d.p.bucket, aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message)))
			}
			return errors.Join(errs...)
		}
		batch = batch[:0]
		return nil
	}
	// Keys under the prefix key come in byte order: key itself, siblings
	// such as key+"-x", the subtree key+"/...", then siblings such as
	// key+"x". The listing stops after the subtree.
	in := &s3.ListObjectsV2Input{Bucket: aws.String(d.p.bucket), Prefix: aws.String(key), MaxKeys: aws.Int32(listMax)}
	for {
		out, err := d.client.ListObjectsV2(ctx, in)
		if err != nil {
			return d.errorf("list", key, err)
		}
		done := !aws.ToBool(out.IsTruncated)
		for _, o := range out.Contents {
			k := aws.ToString(o.Key)
			if k != key && !strings.HasPrefix(k, sub) {
				if k > sub {
					done = true
					break
				}
				continue
			}
			found = true
			batch = append(batch, types.ObjectIdentifier{Key: o.Key})
			if len(batch) == listMax {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if done || len(out.Contents) == 0 {
			break
		}
		// StartAfter rather than a continuation token: the listing runs
		// while its keys are deleted.
		in.StartAfter = out.Contents[len(out.Contents)-1].Key
		in.ContinuationToken = nil
	}
	if err := flush(); err != nil {
		return err
	}
	if !found {
		return storagedriver.PathNotFoundError{Path: path, DriverName: DriverName}
	}
	return nil
}

// abortUploads aborts the multipart uploads in progress to key and to
// keys under sub. One gone meanwhile (NoSuchUpload) is no error.
func (d *driver) abortUploads(ctx context.Context, key, sub string) error {
	pages := s3.NewListMultipartUploadsPaginator(d.client, &s3.ListMultipartUploadsInput{
		Bucket: aws.String(d.p.bucket),
		Prefix: aws.String(key),
	})
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return d.errorf("list multipart uploads", key, err)
		}
		for _, u := range out.Uploads {
			k := aws.ToString(u.Key)
			if k != key && !strings.HasPrefix(k, sub) {
				continue
			}
			if err := d.abort(ctx, k, aws.ToString(u.UploadId)); err != nil && !isNoSuchUpload(err) {
				return err
			}
		}
	}
	return nil
}

// isNoSuchUpload reports whether err is S3's answer for a multipart
// upload that is not in progress.
func isNoSuchUpload(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "NoSuchUpload"
}

// RedirectURL implements storagedriver.StorageDriver: a presigned GET or
// HEAD of the object, valid for 20 minutes, at redirectendpoint when one
// is set. ferry's own server configuration disables redirects.
func (d *driver) RedirectURL(r *http.Request, path string) (string, error) {
	key := d.key(path)
	var (
		req *v4.PresignedHTTPRequest
		err error
	)
	expires := s3.WithPresignExpires(redirectExpiry)
	switch r.Method {
	case http.MethodGet:
		req, err = d.presign.PresignGetObject(r.Context(), &s3.GetObjectInput{Bucket: aws.String(d.p.bucket), Key: aws.String(key)}, expires)
	case http.MethodHead:
		req, err = d.presign.PresignHeadObject(r.Context(), &s3.HeadObjectInput{Bucket: aws.String(d.p.bucket), Key: aws.String(key)}, expires)
	default:
		return "", nil
	}
	if err != nil {
		return "", d.errorf("presign "+r.Method, key, err)
	}
	return req.URL, nil
}

// redirectResolver resolves endpoints as next does, at another scheme and
// host: that of redirectendpoint, so that presigned URLs are signed for
// the host they name.
type redirectResolver struct {
	u    *url.URL
	next s3.EndpointResolverV2
}

// ResolveEndpoint implements s3.EndpointResolverV2.
func (r redirectResolver) ResolveEndpoint(ctx context.Context, p s3.EndpointParameters) (smithyendpoints.Endpoint, error) {
	e, err := r.next.ResolveEndpoint(ctx, p)
	if err != nil {
		return e, err
	}
	e.URI.Scheme, e.URI.Host = r.u.Scheme, r.u.Host
	return e, nil
}
