package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/gzip"
)

// blobDesc is an OCI descriptor, spelled out so the generator needs no
// image library.
type blobDesc struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	URLs        []string          `json:"urls,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// image is the generated Windows-like image, stored as an OCI layout.
type image struct {
	Layout   string   `json:"layout"`
	Config   blobDesc `json:"config"`
	Base     blobDesc `json:"base"`
	Delta    blobDesc `json:"delta"`
	Manifest blobDesc `json:"manifest"`
	DiffIDs  []string `json:"diffIDs"`
}

// Bytes is what a copy moves: config and layers, compressed.
func (img *image) Bytes() int64 { return img.Config.Size + img.Base.Size + img.Delta.Size }

func (img *image) blobPath(d blobDesc) string {
	return filepath.Join(img.Layout, "blobs", "sha256", d.Digest[len("sha256:"):])
}

// content yields n bytes, deterministic in seed: 64 KiB chunks, about half
// random (incompressible) and half text-like (compressible), as system
// files mix binaries and text.
type content struct {
	rng  *rand.ChaCha8
	n    int64
	i    int
	buf  []byte
	left []byte
}

func newContent(seed byte, n int64) *content {
	var s [32]byte
	s[0] = seed
	return &content{rng: rand.NewChaCha8(s), n: n, buf: make([]byte, 64<<10)}
}

func (c *content) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, io.EOF
	}
	if len(c.left) == 0 {
		c.rng.Read(c.buf)
		if c.i%2 == 1 { // compressible: a few words repeated with noise
			words := []string{"Windows ", "System32 ", "servicing ", "amd64_microsoft-windows-", "10.0.20348.2461 ", "Manifest ", "\r\n"}
			j := 0
			for j < len(c.buf) {
				w := words[int(c.buf[j])%len(words)]
				j += copy(c.buf[j:], w)
			}
		}
		c.i++
		c.left = c.buf
	}
	n := copy(p, c.left)
	if int64(n) > c.n {
		n = int(c.n)
	}
	c.left = c.left[n:]
	c.n -= int64(n)
	return n, nil
}

// writeLayer writes a gzip tar holding one file of n bytes into dir and
// returns its descriptor and diff_id.
func writeLayer(dir string, seed byte, n int64, name string) (blobDesc, string, error) {
	tmp, err := os.CreateTemp(dir, "layer-*")
	if err != nil {
		return blobDesc{}, "", err
	}
	defer os.Remove(tmp.Name())
	compressed := sha256.New()
	cw := &countWriter{w: io.MultiWriter(tmp, compressed)}
	zw, err := gzip.NewWriterLevel(cw, gzip.DefaultCompression)
	if err != nil {
		return blobDesc{}, "", err
	}
	diff := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(zw, diff))
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: n, Typeflag: tar.TypeReg}); err != nil {
		return blobDesc{}, "", err
	}
	if _, err := io.Copy(tw, newContent(seed, n)); err != nil {
		return blobDesc{}, "", err
	}
	if err := tw.Close(); err != nil {
		return blobDesc{}, "", err
	}
	if err := zw.Close(); err != nil {
		return blobDesc{}, "", err
	}
	if err := tmp.Close(); err != nil {
		return blobDesc{}, "", err
	}
	hexd := hex.EncodeToString(compressed.Sum(nil))
	if err := os.Rename(tmp.Name(), filepath.Join(dir, hexd)); err != nil {
		return blobDesc{}, "", err
	}
	d := blobDesc{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: "sha256:" + hexd, Size: cw.n}
	return d, "sha256:" + hex.EncodeToString(diff.Sum(nil)), nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeBlob stores a small blob in the layout and returns its descriptor.
func writeBlob(dir, mediaType string, b []byte) (blobDesc, error) {
	sum := sha256.Sum256(b)
	hexd := hex.EncodeToString(sum[:])
	if err := os.WriteFile(filepath.Join(dir, hexd), b, 0o644); err != nil {
		return blobDesc{}, err
	}
	return blobDesc{MediaType: mediaType, Digest: "sha256:" + hexd, Size: int64(len(b))}, nil
}

// generate returns the image for these sizes, from the cache when it was
// generated before.
func generate(cache string, baseMiB, deltaMiB int) (*image, error) {
	root := filepath.Join(cache, fmt.Sprintf("base%d-delta%d-v1", baseMiB, deltaMiB))
	meta := filepath.Join(root, "image.json")
	if b, err := os.ReadFile(meta); err == nil {
		var img image
		if err := json.Unmarshal(b, &img); err == nil {
			return &img, nil
		}
	}
	layout := filepath.Join(root, "layout")
	blobs := filepath.Join(layout, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "generating a %d MiB base and a %d MiB delta layer in %s\n", baseMiB, deltaMiB, root)
	img := &image{Layout: layout}
	var baseDiff, deltaDiff string
	var err error
	if img.Base, baseDiff, err = writeLayer(blobs, 1, int64(baseMiB)<<20, "Files/Windows/System32/base.bin"); err != nil {
		return nil, err
	}
	if img.Delta, deltaDiff, err = writeLayer(blobs, 2, int64(deltaMiB)<<20, "Files/Windows/System32/delta.bin"); err != nil {
		return nil, err
	}
	img.DiffIDs = []string{baseDiff, deltaDiff}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "windows", "os.version": "10.0.20348.2461",
		"config": map[string]any{"Cmd": []string{"cmd"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": img.DiffIDs},
	})
	if img.Config, err = writeBlob(blobs, "application/vnd.oci.image.config.v1+json", cfg); err != nil {
		return nil, err
	}
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": img.Config, "layers": []blobDesc{img.Base, img.Delta},
	})
	if img.Manifest, err = writeBlob(blobs, "application/vnd.oci.image.manifest.v1+json", m); err != nil {
		return nil, err
	}
	entry := img.Manifest
	entry.Annotations = map[string]string{"org.opencontainers.image.ref.name": "v1"}
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []blobDesc{entry}})
	if err := os.WriteFile(filepath.Join(layout, "index.json"), idx, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(layout, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(img)
	return img, os.WriteFile(meta, b, 0o644)
}

// foreignManifest is the image with its base layer made foreign, pointing
// at url.
func (img *image) foreignManifest(url string) ([]byte, error) {
	base := img.Base
	base.MediaType = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
	base.URLs = []string{url}
	return json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": img.Config, "layers": []blobDesc{base, img.Delta},
	})
}
