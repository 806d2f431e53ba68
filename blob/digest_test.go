package blob

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestNames(t *testing.T) {
	raw := []byte(`{"schemaVersion":2}`)
	s256 := sha256.Sum256(raw)
	s512 := sha512.Sum512(raw)
	for _, c := range []struct {
		d    v1.Hash
		want bool
	}{
		{v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s256[:])}, true},
		{v1.Hash{Algorithm: "sha512", Hex: hex.EncodeToString(s512[:])}, true},
		{v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}, false},
		{v1.Hash{Algorithm: "sha512", Hex: strings.Repeat("0", 128)}, false},
		// The right hex under the wrong algorithm names nothing.
		{v1.Hash{Algorithm: "sha512", Hex: hex.EncodeToString(s256[:])}, false},
		{v1.Hash{Algorithm: "md5", Hex: hex.EncodeToString(s256[:])}, false},
	} {
		if got := Names(c.d, raw); got != c.want {
			t.Errorf("Names(%s) = %v, want %v", c.d, got, c.want)
		}
	}
}

func TestCheckBytes(t *testing.T) {
	raw := []byte(`{"schemaVersion":2}`)
	s256 := sha256.Sum256(raw)
	if err := CheckBytes(v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s256[:])}, raw); err != nil {
		t.Errorf("matching digest: %v", err)
	}
	err := CheckBytes(v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}, raw)
	if want := "content hashes to sha256:" + hex.EncodeToString(s256[:]) + ": digest mismatch"; err == nil || err.Error() != want || !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("mismatch: %v, want %q wrapping ErrDigestMismatch", err, want)
	}
	if err := CheckBytes(v1.Hash{Algorithm: "md5", Hex: strings.Repeat("0", 32)}, raw); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("md5: %v", err)
	}
}
