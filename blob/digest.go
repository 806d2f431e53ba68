package blob

import (
	"encoding/hex"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Names reports whether d is the digest of raw, computed in d's own
// algorithm (sha256 or sha512, as NewHash supports). A digest in any other
// algorithm names nothing. Use it, not a comparison of digest strings,
// where content known by one algorithm meets a store that names it by
// another (a registry answers sha256 for a manifest known by sha512).
func Names(d v1.Hash, raw []byte) bool { return CheckBytes(d, raw) == nil }

// CheckBytes returns nil when d, in its own algorithm, is the digest of
// raw; otherwise an error wrapping ErrDigestMismatch that says what raw
// hashes to ("content hashes to sha256:..."), or NewHash's error
// (ErrUnsupportedAlgorithm) for a digest in another algorithm.
func CheckBytes(d v1.Hash, raw []byte) error {
	h, err := NewHash(d)
	if err != nil {
		return err
	}
	h.Write(raw) // a hash.Hash's Write never fails
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Hex {
		return fmt.Errorf("content hashes to %s:%s: %w", d.Algorithm, got, ErrDigestMismatch)
	}
	return nil
}
