// Package storedmanifest reads a manifest's bytes as a distribution
// registry stores them, for the two places that need what a manifest says
// without distribution's manifest service: ferry serve's referrers API
// (server) and storage gc's referrer marking (store/regroot).
package storedmanifest

import (
	"context"
	"errors"
	"io"

	"github.com/distribution/distribution/v3"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/mediatype"
)

// MaxSize is distribution's own limit on a manifest body
// (handlers.maxManifestBodySize): a registry refuses larger pushes.
const MaxSize = mediatype.MaxManifestSize

// Read reads the bytes of manifest d as the registry ns stores them,
// through its blob store rather than its manifest service, which refuses
// content it no longer supports (schema1). The error wraps
// distribution.ErrBlobUnknown when the blob is not there (or goes while
// read), and blob.ErrTooLarge when it holds more than MaxSize bytes: no
// registry took it as a manifest, so it names no subject. At most
// MaxSize+1 bytes are read.
func Read(ctx context.Context, ns distribution.Namespace, d digest.Digest) ([]byte, error) {
	blobs, ok := ns.Blobs().(distribution.BlobProvider)
	if !ok {
		return nil, errors.New("the storage namespace cannot read blobs")
	}
	rc, err := blobs.Open(ctx, d)
	if err == nil {
		defer rc.Close()
		var raw []byte
		raw, err = blob.ReadAtMost(rc, MaxSize)
		if err == nil && len(raw) == 0 {
			// distribution's reader reads a blob removed since Open
			// (or one a descriptor cache still lists) as empty.
			if size, serr := rc.Seek(0, io.SeekEnd); serr == nil && size > 0 {
				return nil, distribution.ErrBlobUnknown
			}
		}
		if err == nil {
			return raw, nil
		}
	}
	if errors.As(err, new(storagedriver.PathNotFoundError)) {
		return nil, distribution.ErrBlobUnknown
	}
	return nil, err
}
