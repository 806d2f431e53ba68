package regstorage

import (
	"path"

	"github.com/opencontainers/go-digest"
)

// BlobPath is the storage-driver path where distribution keeps the bytes
// of the blob whose canonical (sha256) digest is d:
// /docker/registry/v2/blobs/<algorithm>/<first two hex digits>/<hex>/data.
func BlobPath(d digest.Digest) string {
	hex := d.Encoded()
	return path.Join("/", DataDir, "blobs", d.Algorithm().String(), hex[:2], hex, "data")
}
