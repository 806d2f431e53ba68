package transfer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/server"
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/ocilayout"
	"github.com/ferry-dev/ferry/store/registry"
	"github.com/ferry-dev/ferry/transfer"
)

// benchImage pushes an image of two random layers (24 and 8 MiB) to a
// fresh embedded registry and returns the registry and the image's size.
func benchImage(b *testing.B) (*server.Server, int64) {
	b.Helper()
	ctx := context.Background()
	srv, err := server.Start(ctx, "127.0.0.1:0", server.WithRoot(filepath.Join(b.TempDir(), "src")))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	ref, _ := name.ParseReference(srv.Host() + "/bench/src:v1")
	repo, err := registry.Open(ctx, ref, registry.WithPush())
	if err != nil {
		b.Fatal(err)
	}
	var layers []v1.Descriptor
	var diffs []string
	var total int64
	rng := rand.NewChaCha8([32]byte{7})
	for _, size := range []int{24 << 20, 8 << 20} {
		data := make([]byte, size)
		rng.Read(data)
		d := desc(types.OCIUncompressedLayer, data)
		if err := repo.PushBlob(ctx, d, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		layers = append(layers, d)
		diffs = append(diffs, d.Digest.String())
		total += d.Size
	}
	cfg, _ := json.Marshal(map[string]any{"os": "windows", "architecture": "amd64", "rootfs": map[string]any{"type": "layers", "diff_ids": diffs}})
	cd := desc(types.OCIConfigJSON, cfg)
	if err := repo.PushBlob(ctx, cd, bytes.NewReader(cfg)); err != nil {
		b.Fatal(err)
	}
	m, _ := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cd, Layers: layers})
	if err := repo.Tag(ctx, desc(types.OCIManifestSchema1, m), m); err != nil {
		b.Fatal(err)
	}
	return srv, total + cd.Size
}

func desc(mt types.MediaType, b []byte) v1.Descriptor {
	sum := sha256.Sum256(b)
	return v1.Descriptor{MediaType: mt, Size: int64(len(b)), Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}}
}

// BenchmarkCopy measures the copy engine end to end on loopback, small
// enough for CI: registry to registry (every run into a fresh repository,
// so nothing is skipped) and registry to an OCI layout. A regression in
// throughput or allocations shows in review:
//
//	go test -run '^$' -bench . -benchmem ./transfer/
func BenchmarkCopy(b *testing.B) {
	ctx := context.Background()
	src, size := benchImage(b)
	dstSrv, err := server.Start(ctx, "127.0.0.1:0", server.WithRoot(filepath.Join(b.TempDir(), "dst")))
	if err != nil {
		b.Fatal(err)
	}
	defer dstSrv.Close()
	srcRef, _ := name.ParseReference(src.Host() + "/bench/src:v1")
	open := func() store.Source {
		r, err := registry.Open(ctx, srcRef)
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	b.Run("registry-to-registry", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; b.Loop(); i++ {
			dref, _ := name.ParseReference(fmt.Sprintf("%s/bench/dst%d:v1", dstSrv.Host(), i))
			dst, err := registry.Open(ctx, dref, registry.WithPush())
			if err != nil {
				b.Fatal(err)
			}
			if _, err := transfer.Copy(ctx, open(), dst); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("registry-to-layout", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; b.Loop(); i++ {
			dst := ocilayout.Open(filepath.Join(b.TempDir(), fmt.Sprint(i)), "v1", "")
			if _, err := transfer.Copy(ctx, open(), dst); err != nil {
				b.Fatal(err)
			}
		}
	})
}
