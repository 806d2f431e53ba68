package s3driver

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// Walk implements storagedriver.StorageDriver with a flat listing of every
// key under from, a request per 1000 objects rather than one per
// directory; directories are inferred from the keys. Keys under a prefix
// are contiguous in S3's byte order, so each directory comes once, before
// what is in it. With a start-after hint the listing starts after the
// hint's key, and the hint's own ancestors, walked before, are not
// repeated.
func (d *driver) Walk(ctx context.Context, from string, f storagedriver.WalkFn, options ...func(*storagedriver.WalkOptions)) error {
	var wo storagedriver.WalkOptions
	for _, o := range options {
		o(&wo)
	}
	prefix := d.dirPrefix(from)
	in := &s3.ListObjectsV2Input{Bucket: aws.String(d.p.bucket), Prefix: aws.String(prefix), MaxKeys: aws.Int32(listMax)}
	if wo.StartAfterHint != "" {
		in.StartAfter = aws.String(d.key(wo.StartAfterHint))
	}
	var prev, skip string // the previous file; the directory being skipped
	pages := s3.NewListObjectsV2Paginator(d.client, in)
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return d.errorf("list", prefix, err)
		}
		for _, o := range out.Contents {
			k := aws.ToString(o.Key)
			if strings.HasSuffix(k, "/") { // a directory marker, no path
				continue
			}
			p := d.path(k)
			if skip != "" && isSubpath(p, skip) {
				continue
			}
			skip = ""
			infos := newDirs(from, prev, wo.StartAfterHint, p)
			infos = append(infos, storagedriver.FileInfoInternal{FileInfoFields: storagedriver.FileInfoFields{
				Path:    p,
				Size:    aws.ToInt64(o.Size),
				ModTime: aws.ToTime(o.LastModified),
			}})
			prev = p
		entries:
			for _, fi := range infos {
				err := f(fi)
				switch {
				case err == nil:
				case errors.Is(err, storagedriver.ErrSkipDir):
					if fi.IsDir() {
						// What follows in infos is under fi.
						skip = fi.Path()
						break entries
					}
				case errors.Is(err, storagedriver.ErrFilledBuffer):
					return nil
				default:
					return err
				}
			}
		}
	}
	return nil
}

// newDirs returns the directories between from and file p, outermost
// first, that are not ancestors of prev (the previous file walked) or of
// hint (walked before the walk started).
func newDirs(from, prev, hint, p string) []storagedriver.FileInfoInternal {
	var dirs []storagedriver.FileInfoInternal
	for dir := parent(p); dir != "" && dir != from && isSubpath(dir, from); dir = parent(dir) {
		if (prev != "" && isSubpath(prev, dir)) || (hint != "" && isSubpath(hint, dir)) {
			break
		}
		dirs = append(dirs, storagedriver.FileInfoInternal{FileInfoFields: storagedriver.FileInfoFields{Path: dir, IsDir: true}})
	}
	slices.Reverse(dirs)
	return dirs
}

// parent returns the directory of p, or "" for the root.
func parent(p string) string {
	i := strings.LastIndexByte(p, '/')
	switch {
	case i < 0 || p == "/":
		return ""
	case i == 0:
		return "/"
	}
	return p[:i]
}

// isSubpath reports whether p is dir or under it.
func isSubpath(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}
