// Package imagemod changes images without rebuilding them: Rebase swaps the
// base layers under an application's layers, Append adds layers (local
// tars and directories, or foreign layers that stay at a URL), and
// IndexCreate / PushSpec publish several images under one multi-platform
// index.
//
// The planning is pure — descriptors and configs in, descriptors and
// configs out, built in memory (they are small) — and nothing is written
// until every check has passed, so a refusal leaves the target untouched.
// Blobs are never held in memory: they move through transfer.Blobs
// (mounted within a registry, copied otherwise, foreign layers under the
// copy policy) and only the new configs and manifests are uploaded.
//
// No function here prints: warnings come back in the results.
package imagemod

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/inspect"
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/transfer"
)

// Annotations recording an image's base (OCI image spec, pre-defined
// annotation keys).
const (
	AnnotationBaseName   = "org.opencontainers.image.base.name"
	AnnotationBaseDigest = "org.opencontainers.image.base.digest"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrRefused means the change was refused because the images do not
	// fit together; nothing was written.
	ErrRefused = errors.New("refused")
	// ErrNoBase means the old base of an image is neither given nor
	// recorded in its annotations.
	ErrNoBase = errors.New("old base unknown")
	// ErrNoMatch means a platform has no counterpart in another image.
	ErrNoMatch = errors.New("no matching platform")
	// ErrInvalid means the arguments and options cannot make an image
	// (Append to scratch without a platform, or with nothing to add);
	// nothing was read or written. A command reports it as bad usage.
	ErrInvalid = errors.New("invalid arguments")
)

// image is one image manifest with its config, read from a source.
type image struct {
	src      store.Source
	desc     v1.Descriptor // as listed (index entry) or resolved
	raw      []byte
	manifest *v1.Manifest
	cfgRaw   []byte
	cfg      *v1.ConfigFile
}

// platform returns the image's platform from its config.
func (im *image) platform() v1.Platform {
	p := v1.Platform{OS: im.cfg.OS, Architecture: im.cfg.Architecture, Variant: im.cfg.Variant, OSVersion: im.cfg.OSVersion, OSFeatures: im.cfg.OSFeatures}
	return p
}

// root is what a source's location names: one image, or an index of
// entries (loaded lazily).
type root struct {
	src   store.Source
	desc  v1.Descriptor
	raw   []byte
	index *v1.IndexManifest // nil for a single image
	image *image            // single image only
	// loaded holds the index's images already read (image), by digest,
	// so that matching each app platform does not fetch them again.
	loaded map[v1.Hash]*image
}

// entry loads the index entry e once.
func (r *root) entry(ctx context.Context, e v1.Descriptor) (*image, error) {
	if im, ok := r.loaded[e.Digest]; ok {
		return im, nil
	}
	im, err := loadImage(ctx, r.src, e)
	if err != nil {
		return nil, err
	}
	if r.loaded == nil {
		r.loaded = map[v1.Hash]*image{}
	}
	r.loaded[e.Digest] = im
	return im, nil
}

// loadRoot resolves what src names and loads it: an index's manifest list,
// or a single image with its config.
func loadRoot(ctx context.Context, src store.Source) (*root, error) {
	desc, err := src.Resolve(ctx)
	if err != nil {
		return nil, err
	}
	raw, err := src.FetchManifest(ctx, desc)
	if err != nil {
		return nil, err
	}
	r := &root{src: src, desc: desc, raw: raw}
	if desc.MediaType.IsIndex() {
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: index %s: %w", store.NameOf(src), desc.Digest, err)
		}
		r.index = idx
		return r, nil
	}
	im, err := loadImageRaw(ctx, src, desc, raw)
	if err != nil {
		return nil, err
	}
	r.image = im
	return r, nil
}

// loadImage fetches a manifest and its config.
func loadImage(ctx context.Context, src store.Source, desc v1.Descriptor) (*image, error) {
	raw, err := src.FetchManifest(ctx, desc)
	if err != nil {
		return nil, err
	}
	return loadImageRaw(ctx, src, desc, raw)
}

func loadImageRaw(ctx context.Context, src store.Source, desc v1.Descriptor, raw []byte) (*image, error) {
	if !desc.MediaType.IsImage() {
		return nil, fmt.Errorf("%s: %s is a %s, not an image manifest", store.NameOf(src), desc.Digest, desc.MediaType)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: manifest %s: %w", store.NameOf(src), desc.Digest, err)
	}
	if len(m.Layers) > transfer.MaxLayers {
		return nil, fmt.Errorf("%s: manifest %s has %d layers, more than the limit of %d", store.NameOf(src), desc.Digest, len(m.Layers), transfer.MaxLayers)
	}
	cfgRaw, err := inspect.ReadConfig(ctx, src, m.Config)
	if err != nil {
		return nil, fmt.Errorf("%s: config of %s: %w", store.NameOf(src), desc.Digest, err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
	if err != nil {
		return nil, fmt.Errorf("%s: config %s: %w", store.NameOf(src), m.Config.Digest, err)
	}
	if n := len(cfg.RootFS.DiffIDs); n != len(m.Layers) {
		return nil, fmt.Errorf("%s: image %s has %d layers but its config lists %d diff_ids", store.NameOf(src), desc.Digest, len(m.Layers), n)
	}
	return &image{src: src, desc: desc, raw: raw, manifest: m, cfgRaw: cfgRaw, cfg: cfg}, nil
}

// build returns the build of a Windows os.version: its first three fields
// ("10.0.17763" of "10.0.17763.5830"), or "" without one.
func build(osVersion string) string {
	f := strings.Split(osVersion, ".")
	if osVersion == "" || len(f) < 3 {
		return osVersion
	}
	return strings.Join(f[:3], ".")
}

// pushSmall writes a config (or another small blob) held in memory
// through blobs, so that, like every other blob, it is skipped when dst
// has it, verified, reported and retried.
func pushSmall(ctx context.Context, blobs *transfer.Blobs, dst store.Target, d v1.Descriptor, raw []byte) error {
	src := looseBlobs{name: "config built in memory", open: map[v1.Hash]func() (io.ReadCloser, error){
		d.Digest: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
	}}
	if _, err := blobs.Copy(ctx, src, dst, []v1.Descriptor{d}); err != nil {
		return fmt.Errorf("config %s: %w", d.Digest, err)
	}
	return nil
}

// looseBlobs is a store.Source of blobs that are not an image — the files
// of the layers Append prepared, a config built in memory — so that they
// go through transfer.Blobs: skips, retries, verification and progress.
// Resolve and FetchManifest fail.
type looseBlobs struct {
	name string                                    // for messages and progress
	open map[v1.Hash]func() (io.ReadCloser, error) // by digest
}

var (
	_ store.Source = looseBlobs{}
	_ store.Named  = looseBlobs{}
)

// errNoImage is what looseBlobs answers when asked for an image.
var errNoImage = errors.New("not an image")

// Resolve implements store.Source: it fails, the blobs are no image.
func (l looseBlobs) Resolve(context.Context) (v1.Descriptor, error) {
	return v1.Descriptor{}, fmt.Errorf("%s: %w", l.name, errNoImage)
}

// FetchManifest implements store.Source: it fails, the blobs are no image.
func (l looseBlobs) FetchManifest(_ context.Context, d v1.Descriptor) ([]byte, error) {
	return nil, fmt.Errorf("manifest %s in %s: %w", d.Digest, l.name, errNoImage)
}

// FetchBlob implements store.Source. The caller verifies what it reads.
func (l looseBlobs) FetchBlob(_ context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	open, ok := l.open[d.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s in %s: %w", d.Digest, l.name, store.ErrNotFound)
	}
	return open()
}

// Close implements store.Source; what the blobs are read from is not
// theirs.
func (l looseBlobs) Close() error { return nil }

// Name implements store.Named.
func (l looseBlobs) Name() string { return l.name }
