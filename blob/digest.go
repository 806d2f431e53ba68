package blob

import (
	"encoding/hex"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Names reports whether d is the digest of raw, computed in d's own
// algorithm (sha256 or sha512, as NewHash supports). A digest in any other
// algorithm names nothing. Use it, not a comparison of digest strings,
// where content known by one algorithm meets a store that names it by
// another (a registry answers sha256 for a manifest known by sha512).
func Names(d v1.Hash, raw []byte) bool {
	h, err := NewHash(d)
	if err != nil {
		return false
	}
	h.Write(raw) // a hash.Hash's Write never fails
	return hex.EncodeToString(h.Sum(nil)) == d.Hex
}
