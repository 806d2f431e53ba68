package registry

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/fixture"
)

// A manifest known by its sha512 digest can be tagged: the registry names
// it by sha256, and the two are compared in the registry's algorithm. A
// registry that stores other bytes is still caught.
func TestTagManifestKnownBySHA512(t *testing.T) {
	reg := fixture.NewRegistry(t)
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "app", "v1", img)
	raw, mt, _ := reg.Manifest(t, "app", "v1")
	sum := sha512.Sum512(raw)
	desc := v1.Descriptor{MediaType: types.MediaType(mt), Size: int64(len(raw)),
		Digest: v1.Hash{Algorithm: "sha512", Hex: hex.EncodeToString(sum[:])}}

	ref, err := name.ParseReference(reg.Ref("app", "v2"))
	if err != nil {
		t.Fatal(err)
	}
	repo, err := Open(context.Background(), ref, WithPush(), WithInsecure(true))
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Tag(context.Background(), desc, raw); err != nil {
		t.Fatalf("tag a manifest known by sha512: %v", err)
	}
	if !reg.TagExists(t, "app", "v2") {
		t.Error("v2 not tagged")
	}

	wrong := desc
	wrong.Digest.Hex = strings.Repeat("0", 128)
	if err := repo.Tag(context.Background(), wrong, raw); err == nil || !strings.Contains(err.Error(), "registry stored it as") {
		t.Errorf("a sha512 digest that is not the manifest's: %v", err)
	}
}
