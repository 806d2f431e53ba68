// Package inspect describes what a location holds: the root manifest or
// index, and per platform its manifest, config and layers, with foreign
// layers and their urls called out.
package inspect

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/mediatype"
	"github.com/ferry-dev/ferry/platform"
	"github.com/ferry-dev/ferry/store"
)

// MaxConfigSize bounds the image configs read into memory.
const MaxConfigSize = 8 << 20

// Image describes a manifest or an index.
type Image struct {
	Descriptor v1.Descriptor `json:"descriptor"`
	Manifests  []Manifest    `json:"manifests"`
}

// Manifest describes one platform's image manifest.
type Manifest struct {
	Descriptor v1.Descriptor `json:"descriptor"`
	// Platform is "os/arch[/variant][:os.version]", from the index entry or,
	// when the entry lacks os.version, from the config.
	Platform string        `json:"platform"`
	Config   v1.Descriptor `json:"config"`
	Layers   []Layer       `json:"layers"`
	platform *v1.Platform
}

// Layer is one layer descriptor.
type Layer struct {
	Descriptor v1.Descriptor `json:"descriptor"`
	Foreign    bool          `json:"foreign"`
}

// LayerBytes sums the layers' sizes.
func (m Manifest) LayerBytes() int64 {
	var n int64
	for _, l := range m.Layers {
		n += l.Descriptor.Size
	}
	return n
}

// Inspect reads the root manifest or index of src and every image manifest
// below it, and each config for its platform.
func Inspect(ctx context.Context, src store.Source) (*Image, error) {
	desc, err := src.Resolve(ctx)
	if err != nil {
		return nil, err
	}
	img := &Image{Descriptor: desc}
	if err := img.walk(ctx, src, desc, 0); err != nil {
		return nil, err
	}
	return img, nil
}

func (img *Image) walk(ctx context.Context, src store.Source, desc v1.Descriptor, depth int) error {
	if depth > mediatype.MaxIndexDepth {
		return fmt.Errorf("%s: indexes nested too deep", desc.Digest)
	}
	raw, err := src.FetchManifest(ctx, desc)
	if err != nil {
		return err
	}
	if desc.MediaType.IsIndex() {
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		for _, e := range idx.Manifests {
			if err := img.walk(ctx, src, e, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	out := Manifest{Descriptor: desc, Config: m.Config, platform: desc.Platform}
	for _, l := range m.Layers {
		out.Layers = append(out.Layers, Layer{Descriptor: l, Foreign: mediatype.IsForeign(string(l.MediaType))})
	}
	if out.platform == nil || out.platform.OSVersion == "" {
		if cfg, err := readConfig(ctx, src, m.Config); err == nil && cfg.OS != "" {
			out.platform = cfg.Platform()
		}
	}
	out.Platform = "unknown"
	if out.platform != nil {
		out.Platform = platform.Format(out.platform)
	}
	img.Manifests = append(img.Manifests, out)
	return nil
}

func readConfig(ctx context.Context, src store.Source, d v1.Descriptor) (*v1.ConfigFile, error) {
	b, err := ReadConfig(ctx, src, d)
	if err != nil {
		return nil, err
	}
	return v1.ParseConfigFile(bytes.NewReader(b))
}

// ReadConfig reads and verifies a config blob.
func ReadConfig(ctx context.Context, src store.Source, d v1.Descriptor) ([]byte, error) {
	if d.Size > MaxConfigSize {
		return nil, fmt.Errorf("config %s: %d bytes exceeds the %d-byte limit", d.Digest, d.Size, MaxConfigSize)
	}
	rc, err := src.FetchBlob(ctx, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	vr, err := blob.NewReader(rc, d.Digest, d.Size, store.NameOf(src))
	if err != nil {
		return nil, err
	}
	// Bounded even when the descriptor's size is negative (unknown).
	raw, err := blob.ReadAtMost(vr, MaxConfigSize)
	if errors.Is(err, blob.ErrTooLarge) {
		return nil, fmt.Errorf("config %s: %w", d.Digest, err)
	}
	return raw, err
}

// Config returns the raw config of the image, or of the one platform the
// specs select in an index.
func (img *Image) Config(ctx context.Context, src store.Source, specs []platform.Spec) ([]byte, error) {
	cands := img.Manifests
	if len(specs) > 0 {
		cands = nil
		for _, m := range img.Manifests {
			for _, s := range specs {
				if m.platform != nil && s.Matches(*m.platform) {
					cands = append(cands, m)
					break
				}
			}
		}
	}
	switch len(cands) {
	case 0:
		return nil, fmt.Errorf("%s: no manifest matches the given --platform", img.Descriptor.Digest)
	case 1:
		return ReadConfig(ctx, src, cands[0].Config)
	}
	var names []string
	for _, m := range cands {
		names = append(names, m.Platform)
	}
	return nil, fmt.Errorf("%s is an index of %d images (%v): choose one with --platform", img.Descriptor.Digest, len(cands), names)
}
