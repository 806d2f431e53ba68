package imagemod

import (
	"context"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/platform"
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/transfer"
)

// ErrDuplicatePlatform means two images of an index have the same
// platform.
var ErrDuplicatePlatform = errors.New("duplicate platform")

// IndexEntry is one image of an index to build.
type IndexEntry struct {
	// Source names the image: a single image, or an index of which
	// Platform selects one entry.
	Source store.Source
	// Platform holds the platform fields the caller gives; every field
	// left empty (or a nil Platform) is read from the image's config.
	Platform *v1.Platform
}

// IndexResult reports an index written.
type IndexResult struct {
	// Written is the index at the target's tag (and at every extra tag).
	Written v1.Descriptor `json:"written"`
	// Entries are its entries, with their platforms.
	Entries []v1.Descriptor `json:"entries"`
	// Blobs counts the blob transfers.
	Blobs transfer.Result `json:"blobs"`
}

// indexed is an entry loaded and planned.
type indexed struct {
	img   *image
	desc  v1.Descriptor // as the index lists it
	raw   []byte        // the manifest to write
	plat  v1.Platform
	blobs []v1.Descriptor // config and layers to copy
}

// IndexCreate writes to dst an index of the entries' images, in order,
// with each entry's platform completed from its config (os.version and
// os.features included: Windows clients choose by them). Images are
// copied with their blobs — mounted from other repositories of the same
// registry, foreign layers under WithBlobs' policy — before the index;
// the index is tagged at dst and then at each of also. Every image is
// loaded and checked before anything is written: a missing image or two
// images with the same platform (ErrDuplicatePlatform) write nothing.
//
// The index is a Docker manifest list only when every image is a Docker
// schema 2 manifest and no annotations are given (a manifest list lists
// Docker manifests only and has no annotations), else an OCI image index,
// which may list Docker manifests beside OCI ones (crane index append
// writes an OCI index by default too; manifest-tool takes the type from
// its --type flag and lists either kind of manifest in either, which
// gives a Docker manifest list listing OCI manifests — never done here).
// Each image is listed as it
// is, its own media type in the entry: its manifest is rewritten (a new
// digest) only when the foreign policy localizes or rewrites urls, and
// then a localized layer gets its manifest's own schema's type.
//
// Options: WithAnnotations, WithBlobs, WithBeforeTag.
func IndexCreate(ctx context.Context, dst store.Target, entries []IndexEntry, also []store.Target, opts ...Option) (*IndexResult, error) {
	o, err := makeOptions("index create", opts, "annotations", "before tag")
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, errors.New("an index needs at least one image")
	}
	var plans []*indexed
	seen := map[string]string{}
	oci := len(o.annotations) > 0
	for _, e := range entries {
		p, err := planEntry(ctx, e, o.blobs)
		if err != nil {
			return nil, err
		}
		key := platformKey(p.plat)
		if prev, ok := seen[key]; ok {
			return nil, fmt.Errorf("%w %s: %s and %s", ErrDuplicatePlatform, platform.Format(&p.plat), prev, store.NameOf(e.Source))
		}
		seen[key] = store.NameOf(e.Source)
		oci = oci || p.desc.MediaType == types.OCIManifestSchema1
		plans = append(plans, p)
	}
	idx := &v1.IndexManifest{SchemaVersion: 2, MediaType: types.DockerManifestList}
	if oci {
		idx.MediaType = types.OCIImageIndex
	}
	if len(o.annotations) > 0 {
		idx.Annotations = o.annotations
	}
	res := &IndexResult{}
	for _, p := range plans {
		idx.Manifests = append(idx.Manifests, p.desc)
	}
	raw, err := encode(idx)
	if err != nil {
		return nil, err
	}
	res.Written, res.Entries = blob.DescriptorOf(raw, idx.MediaType), idx.Manifests

	for _, p := range plans {
		br, err := o.blobs.Copy(ctx, p.img.src, dst, p.blobs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", store.NameOf(p.img.src), err)
		}
		res.Blobs.Add(br)
		if err := dst.PushManifest(ctx, p.desc, p.raw); err != nil {
			return nil, err
		}
	}
	if o.beforeTag != nil {
		if err := o.beforeTag(ctx, res); err != nil {
			return nil, err
		}
	}
	for _, t := range append([]store.Target{dst}, also...) {
		if err := t.Tag(ctx, res.Written, raw); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// planEntry loads an entry's image and completes its platform.
func planEntry(ctx context.Context, e IndexEntry, blobs *transfer.Blobs) (*indexed, error) {
	r, err := loadRoot(ctx, e.Source)
	if err != nil {
		return nil, err
	}
	im := r.image
	if r.index != nil {
		if im, err = pickEntry(ctx, r, e.Platform); err != nil {
			return nil, err
		}
	}
	p := completePlatform(e.Platform, im.platform())
	x := &indexed{img: im, plat: p, raw: im.raw}
	x.blobs = append([]v1.Descriptor{im.manifest.Config}, im.manifest.Layers...)
	changed := false
	for _, l := range im.manifest.Layers {
		nl := blobs.Descriptor(l, im.desc.MediaType)
		changed = changed || nl.MediaType != l.MediaType || strings.Join(nl.URLs, " ") != strings.Join(l.URLs, " ")
	}
	if changed { // localized or with rewritten URLs: a new manifest
		layers, err := layersIn(blobs, im.manifest.Layers, im.desc.MediaType, store.NameOf(e.Source))
		if err != nil {
			return nil, err
		}
		m, err := withLayers(im.raw, im.manifest.Config, layers)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", store.NameOf(e.Source), err)
		}
		if x.raw, err = encode(m); err != nil {
			return nil, err
		}
	}
	x.desc = blob.DescriptorOf(x.raw, im.desc.MediaType)
	x.desc.Platform = &p
	return x, nil
}

// pickEntry selects the one image of an index that the given platform
// fields (os and architecture at least) name.
func pickEntry(ctx context.Context, r *root, p *v1.Platform) (*image, error) {
	if p == nil || p.OS == "" || p.Architecture == "" {
		return nil, fmt.Errorf("%s is an index: name a single image, or give the entry's platform", store.NameOf(r.src))
	}
	spec, err := platform.ParseSpec(p.OS + "/" + p.Architecture)
	if err != nil {
		return nil, err
	}
	spec.Variant, spec.OSVersion = p.Variant, p.OSVersion
	sel, err := platform.Select(r.index.Manifests, []platform.Spec{spec})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", store.NameOf(r.src), err)
	}
	if len(sel) != 1 {
		return nil, fmt.Errorf("%s: %d entries match %s; give os.version", store.NameOf(r.src), len(sel), spec)
	}
	return loadImage(ctx, r.src, r.index.Manifests[sel[0]])
}

// completePlatform fills the fields given leaves empty from the config's.
func completePlatform(given *v1.Platform, cfg v1.Platform) v1.Platform {
	if given == nil {
		return cfg
	}
	p := *given
	fill := func(dst *string, src string) {
		if *dst == "" {
			*dst = src
		}
	}
	fill(&p.OS, cfg.OS)
	fill(&p.Architecture, cfg.Architecture)
	fill(&p.Variant, cfg.Variant)
	fill(&p.OSVersion, cfg.OSVersion)
	if len(p.OSFeatures) == 0 {
		p.OSFeatures = cfg.OSFeatures
	}
	return p
}

func platformKey(p v1.Platform) string {
	return strings.ToLower(platform.Format(&p)) + "|" + strings.Join(p.OSFeatures, ",")
}
