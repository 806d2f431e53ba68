package imagemod

import (
	"context"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/mediatype"
	"github.com/ferry-dev/ferry/platform"
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/transfer"
)

// AppendResult reports an append.
type AppendResult struct {
	// Written is the manifest at the target's tag.
	Written v1.Descriptor `json:"written"`
	// Base is the base manifest built on; zero for scratch.
	Base v1.Hash `json:"base,omitzero"`
	// Layers are the added layers as the manifest lists them, and DiffIDs
	// their diff_ids.
	Layers  []v1.Descriptor `json:"layers"`
	DiffIDs []v1.Hash       `json:"diffIDs"`
	// Uploaded counts the added layers uploaded (not already present, not
	// foreign).
	Uploaded int `json:"uploaded"`
	// Blobs counts the base's blob transfers.
	Blobs transfer.Result `json:"blobs"`
}

// Append writes to dst the image base names (nil: scratch) with layers
// added on top, in order, and optional labels and annotations.
//
// A base index needs WithPlatform to choose its entry unless it has one;
// scratch needs WithPlatform (os/arch[:os.version]) and gives an OCI
// manifest. Without it, or with nothing to add, the error wraps
// ErrInvalid. Local layers are compressed while hashed, then uploaded
// through WithBlobs' Blobs: skipped when dst has them, retried, verified
// against the digest computed, reported in its events. A foreign layer is
// read once from its URL (under the fetcher's policy, within its stall
// timeout) and listed with that URL, its bytes never uploaded.
// The base's layers are copied or mounted under WithBlobs' policy. The
// result is a manifest of the base's media type (OCI on scratch) and
// lists every layer, added or the base's, under that manifest's schema
// (mediatype.ForSchema), so Docker and OCI types never mix. The
// result records the base in org.opencontainers.image.base.name/.digest.
// Every layer is read and hashed before anything is written.
//
// Options: WithPlatform, WithLabels, WithAnnotations, WithEntrypoint,
// WithCreated, WithBaseName, WithBlobs, WithTempDir.
func Append(ctx context.Context, base store.Source, dst store.Target, layers []Layer, opts ...Option) (*AppendResult, error) {
	o, err := appendOptions(base == nil, layers, opts)
	if err != nil {
		return nil, err
	}
	var im *image
	if base == nil {
		im, err = scratch(o.platform)
	} else {
		im, err = pickBase(ctx, base, o.platform)
		if o.baseName == "" {
			o.baseName = store.NameOf(base)
		}
	}
	if err != nil {
		return nil, err
	}
	var prepared []*preparedLayer
	defer func() {
		for _, p := range prepared {
			p.cleanup()
		}
	}()
	for _, l := range layers {
		p, err := prepare(ctx, l, o.tempDir, o.blobs.Fetcher())
		if err != nil {
			return nil, err
		}
		prepared = append(prepared, p)
		p.desc.MediaType = layerType(im.desc.MediaType, l.URL != "")
	}
	res := &AppendResult{}
	if im.src != nil {
		res.Base = im.desc.Digest
	}
	cfg, err := appendConfig(im, prepared, o)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfgDesc := blob.DescriptorOf(cfg, im.manifest.Config.MediaType)
	all, err := layersIn(o.blobs, im.manifest.Layers, im.desc.MediaType, "the base "+im.desc.Digest.String())
	if err != nil {
		return nil, err
	}
	for _, p := range prepared {
		all = append(all, p.desc)
		res.Layers = append(res.Layers, p.desc)
		res.DiffIDs = append(res.DiffIDs, p.diffID)
	}
	raw, err := appendManifest(im, cfgDesc, all, o.annotations, o.baseName)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	res.Written = blob.DescriptorOf(raw, im.desc.MediaType)

	if im.src != nil {
		br, err := o.blobs.Copy(ctx, im.src, dst, im.manifest.Layers)
		if err != nil {
			return nil, fmt.Errorf("base layers: %w", err)
		}
		res.Blobs = *br
	}
	if files, descs := layerFiles(prepared); len(descs) > 0 {
		lr, err := o.blobs.Copy(ctx, files, dst, descs)
		if err != nil {
			return nil, fmt.Errorf("layers %s: %w", files.Name(), err)
		}
		res.Uploaded = lr.BlobsCopied
	}
	if err := pushSmall(ctx, o.blobs, dst, cfgDesc, cfg); err != nil {
		return nil, err
	}
	if err := dst.Tag(ctx, res.Written, raw); err != nil {
		return nil, err
	}
	return res, nil
}

// layerType is the media type of a layer Append adds — gzip, or foreign
// — in a manifest of type manifestType.
func layerType(manifestType types.MediaType, isForeign bool) types.MediaType {
	mt := string(types.DockerLayer)
	if isForeign {
		mt = mediatype.DockerForeign
	}
	// Both gzip types exist in both schemas: no error.
	to, _ := mediatype.ForSchema(mt, string(manifestType))
	return types.MediaType(to)
}

// CheckAppend checks Append's arguments without reading or writing
// anything, as Append checks them first: scratch (onScratch) without
// WithPlatform, or nothing to add, is an error wrapping ErrInvalid; an
// option Append does not take is an error too. Callers check before they
// open the stores, so that bad usage is said before any connection is
// made.
func CheckAppend(onScratch bool, layers []Layer, opts ...Option) error {
	_, err := appendOptions(onScratch, layers, opts)
	return err
}

// appendOptions makes Append's options and checks its arguments
// (CheckAppend).
func appendOptions(onScratch bool, layers []Layer, opts []Option) (*options, error) {
	o, err := makeOptions("append", opts, "platform", "labels", "annotations", "entrypoint", "created", "base name", "temp dir")
	if err != nil {
		return nil, err
	}
	if len(layers) == 0 && len(o.labels) == 0 && len(o.annotations) == 0 && o.entrypoint == nil {
		return nil, fmt.Errorf("append: nothing to add (no layers, labels, annotations or entrypoint): %w", ErrInvalid)
	}
	if onScratch && o.platform == nil {
		return nil, fmt.Errorf("append to scratch needs a platform, os/arch[:os.version]: %w", ErrInvalid)
	}
	return o, nil
}

// scratch is the empty image for a platform: an OCI manifest and a config
// with no layers.
func scratch(p *platform.Spec) (*image, error) {
	cfg := &v1.ConfigFile{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, OSVersion: p.OSVersion, RootFS: v1.RootFS{Type: "layers"}}
	raw, err := encode(cfg)
	if err != nil {
		return nil, err
	}
	m := &v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: v1.Descriptor{MediaType: types.OCIConfigJSON}}
	mraw, err := encode(m)
	if err != nil {
		return nil, err
	}
	return &image{desc: v1.Descriptor{MediaType: types.OCIManifestSchema1}, raw: mraw, manifest: m, cfgRaw: raw, cfg: cfg}, nil
}

// pickBase loads the base image: the single image src names (which must
// fit p, when given), or the entry of its index p selects.
func pickBase(ctx context.Context, src store.Source, p *platform.Spec) (*image, error) {
	r, err := loadRoot(ctx, src)
	if err != nil {
		return nil, err
	}
	if r.index == nil {
		if p != nil && !p.Matches(r.image.platform()) {
			ip := r.image.platform()
			return nil, fmt.Errorf("%w: the base %s is %s, not %s", ErrNoMatch, store.NameOf(src), platform.Format(&ip), p)
		}
		return r.image, nil
	}
	var entries []v1.Descriptor
	for _, e := range r.index.Manifests {
		if e.MediaType.IsImage() && !isAttestation(e) {
			entries = append(entries, e)
		}
	}
	if p == nil {
		if len(entries) != 1 {
			return nil, fmt.Errorf("the base %s is an index of %d images: choose one with --platform", store.NameOf(src), len(entries))
		}
		return loadImage(ctx, src, entries[0])
	}
	sel, err := platform.Select(entries, []platform.Spec{*p})
	if err != nil {
		return nil, fmt.Errorf("the base %s: %w", store.NameOf(src), err)
	}
	if len(sel) > 1 {
		// The newest update of the build.
		var ims []*image
		for _, i := range sel {
			im, err := loadImage(ctx, src, entries[i])
			if err != nil {
				return nil, err
			}
			ims = append(ims, im)
		}
		return preferBuild(ims, ims[0].cfg.OSVersion)[0], nil
	}
	return loadImage(ctx, src, entries[sel[0]])
}

// appendConfig adds the layers' diff_ids and history entries, the labels
// and the entrypoint to the base config, and sets its created time when o
// gives one, keeping its other fields.
func appendConfig(base *image, layers []*preparedLayer, o *options) ([]byte, error) {
	cfg, err := parseObject(base.cfgRaw)
	if err != nil {
		return nil, err
	}
	diffIDs := append([]v1.Hash{}, base.cfg.RootFS.DiffIDs...)
	var hist []json.RawMessage
	if err := rawList(base.cfgRaw, &hist); err != nil {
		return nil, err
	}
	for _, l := range layers {
		diffIDs = append(diffIDs, l.diffID)
		// The path is left out, so that the same tree gives the same image
		// wherever it lies.
		by := "ferry append --layer " + l.diffID.String()
		if l.layer.URL != "" {
			by = "ferry append --foreign-url " + l.layer.URL
		}
		h, err := encode(v1.History{CreatedBy: by, Created: v1.Time{Time: o.created}})
		if err != nil {
			return nil, err
		}
		hist = append(hist, h)
	}
	rootfs := object{"type": json.RawMessage(`"layers"`)}
	if rootfs["diff_ids"], err = encode(diffIDs); err != nil {
		return nil, err
	}
	if err := cfg.set("rootfs", rootfs); err != nil {
		return nil, err
	}
	if len(hist) > 0 && (len(base.cfg.History) > 0 || len(base.manifest.Layers) == 0) {
		if err := cfg.set("history", hist); err != nil {
			return nil, err
		}
	}
	if !o.created.IsZero() {
		if err := cfg.set("created", o.created); err != nil {
			return nil, err
		}
	}
	if len(o.labels) == 0 && o.entrypoint == nil {
		return encode(cfg)
	}
	inner := object{}
	if raw, ok := cfg["config"]; ok {
		if inner, err = parseObject(raw); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	if len(o.labels) > 0 {
		all := map[string]string{}
		if raw, ok := inner["Labels"]; ok && string(raw) != "null" {
			if err := json.Unmarshal(raw, &all); err != nil {
				return nil, fmt.Errorf("labels: %w", err)
			}
		}
		for k, v := range o.labels {
			all[k] = v
		}
		if err := inner.set("Labels", all); err != nil {
			return nil, err
		}
	}
	if o.entrypoint != nil {
		if err := inner.set("Entrypoint", o.entrypoint); err != nil {
			return nil, err
		}
		delete(inner, "Cmd")
	}
	if err := cfg.set("config", inner); err != nil {
		return nil, err
	}
	return encode(cfg)
}

// appendManifest is the base manifest with the new config and layers,
// the annotations added, and the base recorded (unless scratch).
func appendManifest(base *image, cfg v1.Descriptor, layers []v1.Descriptor, ann map[string]string, baseName string) ([]byte, error) {
	m, err := withLayers(base.raw, cfg, layers)
	if err != nil {
		return nil, err
	}
	if base.src != nil {
		if err := setBaseAnnotations(m, baseName, base.desc.Digest, true); err != nil {
			return nil, err
		}
	} else {
		// Scratch has no base: drop any inherited record.
		delete(m, "annotations")
	}
	if err := mergeAnnotations(m, ann); err != nil {
		return nil, err
	}
	return encode(m)
}
