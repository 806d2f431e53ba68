package imagemod

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/platform"
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/transfer"
)

// Rebased describes one image manifest a rebase produced.
type Rebased struct {
	// Platform is the result's platform, os/arch[/variant][:os.version].
	Platform string `json:"platform"`
	// Old and New are the app manifest's digest before and after.
	Old v1.Hash `json:"old"`
	New v1.Hash `json:"new"`
	// OldBase and NewBase are the base manifests swapped.
	OldBase v1.Hash `json:"oldBase"`
	NewBase v1.Hash `json:"newBase"`
	// BaseLayers is how many layers of the result come from the new base,
	// AppLayers how many from the app.
	BaseLayers int `json:"baseLayers"`
	AppLayers  int `json:"appLayers"`
}

// RebaseResult reports a rebase.
type RebaseResult struct {
	// Written is the manifest or index at the target's tag (with a dry
	// run, the one that would be).
	Written v1.Descriptor `json:"written"`
	// Images lists each rebased manifest.
	Images []Rebased `json:"images"`
	// Warnings are conditions the caller should show the user.
	Warnings []string `json:"warnings,omitempty"`
	// Blobs counts the blob transfers.
	Blobs transfer.Result `json:"blobs"`
	// DryRun is true when nothing was written.
	DryRun bool `json:"dryRun,omitempty"`
}

// plan is one app manifest rebased in memory.
type plan struct {
	app, oldBase, newBase *image
	baseLayers, appLayers []v1.Descriptor // as the result lists them
	cfg, manifest         []byte
	cfgDesc, desc         v1.Descriptor
	platform              v1.Platform
}

// noResolver is the resolver of a call given none: it refuses every
// reference.
type noResolver struct{}

func (noResolver) Source(_ context.Context, ref string) (store.Source, error) {
	return nil, fmt.Errorf("cannot open %s: no opener configured", ref)
}

func (noResolver) Target(_ context.Context, ref string, _ store.Source) (store.Target, error) {
	return nil, fmt.Errorf("cannot open %s: no opener configured", ref)
}

// Rebase replaces the old base layers of the image (or of every image of
// the index) src names by newBase's, and writes the result to dst.
//
// The old base comes from WithOldBase, else from each manifest's
// org.opencontainers.image.base.name / .base.digest annotations (opened
// with WithResolver); without either the error wraps ErrNoBase. Rebase
// refuses (ErrRefused) when the app's layers do not start with the old
// base's — naming the first layer index that differs and both digests —
// and when os or architecture differ from the new base's. An index is
// rebased per platform onto the new base's entry with the same
// os/architecture/variant and Windows build (first three os.version
// fields); a platform without one fails with ErrNoMatch naming it.
//
// The result has the new base's layers, diff_ids and history, then the
// app's above the old base, in a manifest of the app's media type with
// the app's config media type: layers are listed under that manifest's
// schema (mediatype.ForSchema: a Docker base's foreign layers become OCI
// non-distributable gzip layers, urls kept, in an OCI image, and the
// reverse), blob digests unchanged; a layer type the schema lacks (zstd
// in a Docker image) is refused; os.version, os.features and variant from the
// new base; the app's config (labels, env, entrypoint), created time and
// other fields; base annotations naming the new base. Moving across
// Windows builds is allowed and reported in Warnings. Nothing is written
// before every platform is planned; then blobs are copied (mounted within
// a registry, foreign layers under WithBlobs' policy), then configs,
// manifests, and last the tag.
//
// Options: WithOldBase, WithResolver, WithBlobs, WithBaseName, WithDryRun.
func Rebase(ctx context.Context, src, newBase store.Source, dst store.Target, opts ...Option) (*RebaseResult, error) {
	o, err := makeOptions("rebase", opts, "old base", "base name", "dry run")
	if err != nil {
		return nil, err
	}
	if o.baseName == "" {
		o.baseName = store.NameOf(newBase)
	}
	app, err := loadRoot(ctx, src)
	if err != nil {
		return nil, err
	}
	nb, err := loadRoot(ctx, newBase)
	if err != nil {
		return nil, err
	}
	var ob *root
	if o.oldBase != nil {
		if ob, err = loadRoot(ctx, o.oldBase); err != nil {
			return nil, err
		}
	}
	res := &RebaseResult{DryRun: o.dryRun}
	r := &rebaser{o: o, nb: nb, ob: ob, opened: map[string]*root{}, res: res}

	var plans []*plan
	drop := map[v1.Hash]bool{}
	if app.index == nil {
		p, err := r.plan(ctx, app.image, nil, false)
		if err != nil {
			return nil, err
		}
		plans = append(plans, p)
	} else {
		for _, e := range app.index.Manifests {
			if !e.MediaType.IsImage() || isAttestation(e) {
				drop[e.Digest] = true
				res.Warnings = append(res.Warnings, fmt.Sprintf("index entry %s (%s) is not a platform image and is left out of the result", e.Digest, e.MediaType))
				continue
			}
			im, err := loadImage(ctx, src, e)
			if err != nil {
				return nil, err
			}
			p, err := r.plan(ctx, im, app.index.Annotations, true)
			if err != nil {
				return nil, err
			}
			plans = append(plans, p)
		}
		if len(plans) == 0 {
			return nil, fmt.Errorf("%w: index %s has no platform images", ErrRefused, app.desc.Digest)
		}
	}
	for _, p := range plans {
		res.Images = append(res.Images, Rebased{
			Platform: platform.Format(&p.platform), Old: p.app.desc.Digest, New: p.desc.Digest,
			OldBase: p.oldBase.desc.Digest, NewBase: p.newBase.desc.Digest,
			BaseLayers: len(p.baseLayers), AppLayers: len(p.appLayers),
		})
	}
	var rootRaw []byte
	if app.index == nil {
		res.Written, rootRaw = plans[0].desc, plans[0].manifest
	} else {
		repl := map[v1.Hash]*plan{}
		for _, p := range plans {
			repl[p.app.desc.Digest] = p
		}
		if rootRaw, err = rebaseIndex(app.raw, repl, drop, o.baseName, nb.desc.Digest); err != nil {
			return nil, fmt.Errorf("index %s: %w", app.desc.Digest, err)
		}
		res.Written = blob.DescriptorOf(rootRaw, app.desc.MediaType)
	}
	if o.dryRun {
		return res, nil
	}
	for _, p := range plans {
		if err := r.write(ctx, dst, p, app.index == nil); err != nil {
			return nil, err
		}
	}
	if app.index != nil {
		if err := dst.Tag(ctx, res.Written, rootRaw); err != nil {
			return nil, err
		}
	}
	return res, nil
}

type rebaser struct {
	o      *options
	nb, ob *root
	opened map[string]*root // old bases opened from annotations
	res    *RebaseResult
}

// plan rebases one app manifest in memory. inIndex asks for the same
// Windows build in the new base; parentAnn are the app index's
// annotations, consulted when the manifest records no base.
func (r *rebaser) plan(ctx context.Context, app *image, parentAnn map[string]string, inIndex bool) (*plan, error) {
	ap := app.platform()
	ob, err := r.oldBaseFor(ctx, app, parentAnn)
	if err != nil {
		return nil, err
	}
	nb, err := r.newBaseFor(ctx, app, inIndex)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(nb.cfg.OS, app.cfg.OS) || !sameArch(nb.cfg, app.cfg) {
		np := nb.platform()
		return nil, fmt.Errorf("%w: the image is %s but the new base %s is %s", ErrRefused, platform.Format(&ap), nb.desc.Digest, platform.Format(&np))
	}
	if a, b := build(app.cfg.OSVersion), build(nb.cfg.OSVersion); a != b && a != "" && b != "" {
		r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("%s: moving from Windows build %s to %s; the app layers may carry registry changes that do not fit the new base — test the result", platform.Format(&ap), a, b))
	}
	k := len(ob.manifest.Layers)
	p := &plan{app: app, oldBase: ob, newBase: nb}
	// The result is a manifest of the app's type: the new base's layers
	// are named in its schema.
	mt := app.desc.MediaType
	if p.baseLayers, err = layersIn(r.o.blobs, nb.manifest.Layers, mt, "the new base "+nb.desc.Digest.String()); err != nil {
		return nil, err
	}
	if p.appLayers, err = layersIn(r.o.blobs, app.manifest.Layers[k:], mt, "the image "+app.desc.Digest.String()); err != nil {
		return nil, err
	}
	if p.cfg, err = rebaseConfig(app, ob, nb); err != nil {
		return nil, fmt.Errorf("config of %s: %w", app.desc.Digest, err)
	}
	p.cfgDesc = blob.DescriptorOf(p.cfg, app.manifest.Config.MediaType)
	layers := append(append([]v1.Descriptor{}, p.baseLayers...), p.appLayers...)
	if p.manifest, err = rebaseManifest(app.raw, p.cfgDesc, layers, r.o.baseName, nb.desc.Digest); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", app.desc.Digest, err)
	}
	p.desc = blob.DescriptorOf(p.manifest, app.desc.MediaType)
	p.platform = v1.Platform{OS: app.cfg.OS, Architecture: app.cfg.Architecture, Variant: nb.cfg.Variant, OSVersion: nb.cfg.OSVersion, OSFeatures: nb.cfg.OSFeatures}
	return p, nil
}

func sameArch(a, b *v1.ConfigFile) bool {
	sa, _ := platform.ParseSpec(a.OS + "/" + a.Architecture)
	sb, _ := platform.ParseSpec(b.OS + "/" + b.Architecture)
	if sa.Architecture == "" || sb.Architecture == "" {
		return strings.EqualFold(a.Architecture, b.Architecture)
	}
	return sa.Architecture == sb.Architecture
}

// oldBaseFor finds the old base of app: the WithOldBase image (or its
// matching entry), else the one its annotations (or its index's) name.
func (r *rebaser) oldBaseFor(ctx context.Context, app *image, parentAnn map[string]string) (*image, error) {
	base := r.ob
	if base == nil {
		ann := app.manifest.Annotations
		if ann[AnnotationBaseName] == "" && ann[AnnotationBaseDigest] == "" {
			ann = parentAnn
		}
		name, dg := ann[AnnotationBaseName], ann[AnnotationBaseDigest]
		if name == "" {
			what := "neither --old-base nor the annotation " + AnnotationBaseName
			if dg != "" {
				what = "no --old-base, and the annotation " + AnnotationBaseDigest + " comes without " + AnnotationBaseName
			}
			return nil, fmt.Errorf("%w for %s %s: %s names it", ErrNoBase, store.NameOf(app.src), app.desc.Digest, what)
		}
		ref := name
		if dg != "" {
			ref = refWithDigest(name, dg)
		}
		if base = r.opened[ref]; base == nil {
			src, err := r.o.resolver.Source(ctx, ref)
			if err != nil {
				return nil, fmt.Errorf("old base %s (from the image's annotations): %w", ref, err)
			}
			if base, err = loadRoot(ctx, src); err != nil {
				return nil, fmt.Errorf("old base %s (from the image's annotations): %w", ref, err)
			}
			r.opened[ref] = base
		}
	}
	cands, err := candidates(ctx, base, app.cfg)
	if err != nil {
		return nil, err
	}
	if len(cands) == 0 {
		ap := app.platform()
		return nil, fmt.Errorf("%w: the old base %s has no %s image", ErrNoMatch, store.NameOf(base.src), platform.Format(&ap))
	}
	// The first candidate whose layers the app starts with; otherwise the
	// refusal names the closest one (same build first).
	var firstErr error
	for _, c := range preferBuild(cands, app.cfg.OSVersion) {
		err := checkPrefix(app, c)
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// refWithDigest pins a reference to a digest, dropping any tag.
func refWithDigest(name, dg string) string {
	if i := strings.LastIndex(name, "@"); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	return name + "@" + dg
}

// newBaseFor picks the new base image for app: the image itself, or the
// index entry with the same os/arch/variant and (for an app index, or
// when there is one) the same Windows build, the newest update first.
func (r *rebaser) newBaseFor(ctx context.Context, app *image, needBuild bool) (*image, error) {
	if r.nb.index == nil {
		if needBuild && r.nb.image.cfg.OSVersion != "" && build(r.nb.image.cfg.OSVersion) != build(app.cfg.OSVersion) {
			ap := app.platform()
			return nil, fmt.Errorf("%w: platform %s of the image index has no counterpart in the new base %s, which is a single %s image", ErrNoMatch, platform.Format(&ap), store.NameOf(r.nb.src), r.nb.image.cfg.OSVersion)
		}
		return r.nb.image, nil
	}
	cands, err := candidates(ctx, r.nb, app.cfg)
	if err != nil {
		return nil, err
	}
	ap := app.platform()
	sorted := preferBuild(cands, app.cfg.OSVersion)
	if len(sorted) > 0 && (build(sorted[0].cfg.OSVersion) == build(app.cfg.OSVersion) || !needBuild && len(cands) == 1) {
		return sorted[0], nil
	}
	same := "same os/architecture/variant"
	if app.cfg.OSVersion != "" {
		same += " and Windows build " + build(app.cfg.OSVersion)
	}
	return nil, fmt.Errorf("%w: platform %s has no counterpart (%s) in the new base %s", ErrNoMatch, platform.Format(&ap), same, store.NameOf(r.nb.src))
}

// candidates returns the images of base whose os, architecture and
// variant are cfg's (any variant when cfg has none).
func candidates(ctx context.Context, base *root, cfg *v1.ConfigFile) ([]*image, error) {
	spec := platform.Spec{OS: strings.ToLower(cfg.OS), Architecture: cfg.Architecture}
	if s, err := platform.ParseSpec(cfg.OS + "/" + cfg.Architecture); err == nil {
		spec = s
	}
	spec.Variant = cfg.Variant
	if base.index == nil {
		return []*image{base.image}, nil
	}
	var out []*image
	for _, e := range base.index.Manifests {
		if !e.MediaType.IsImage() || isAttestation(e) {
			continue
		}
		if e.Platform != nil {
			p := *e.Platform
			p.OSVersion = ""
			if !spec.Matches(p) {
				continue
			}
		}
		im, err := base.entry(ctx, e)
		if err != nil {
			return nil, err
		}
		if spec.Matches(im.platform()) {
			out = append(out, im)
		}
	}
	return out, nil
}

// preferBuild orders images: those on osVersion's Windows build first,
// newest update first, then the rest in index order.
func preferBuild(ims []*image, osVersion string) []*image {
	var same, other []*image
	for _, im := range ims {
		if build(im.cfg.OSVersion) == build(osVersion) {
			same = append(same, im)
		} else {
			other = append(other, im)
		}
	}
	for i := 1; i < len(same); i++ {
		for j := i; j > 0 && platform.CompareOSVersion(same[j].cfg.OSVersion, same[j-1].cfg.OSVersion) > 0; j-- {
			same[j], same[j-1] = same[j-1], same[j]
		}
	}
	return append(same, other...)
}

// checkPrefix refuses an app whose layers do not start with the base's.
func checkPrefix(app, base *image) error {
	al, bl := app.manifest.Layers, base.manifest.Layers
	for i, b := range bl {
		if i >= len(al) {
			return fmt.Errorf("%w: %s %s has %d layers, fewer than the %d of the old base %s %s", ErrRefused, store.NameOf(app.src), app.desc.Digest, len(al), len(bl), store.NameOf(base.src), base.desc.Digest)
		}
		if al[i].Digest != b.Digest {
			return fmt.Errorf("%w: %s %s is not built on the old base %s %s: layer %d differs (image has %s, old base has %s)", ErrRefused, store.NameOf(app.src), app.desc.Digest, store.NameOf(base.src), base.desc.Digest, i, al[i].Digest, b.Digest)
		}
	}
	return nil
}

// rebaseConfig returns the app's config with the new base under its own
// layers: rootfs.diff_ids and history spliced, os.version, os.features
// and variant from the new base, every other field kept.
func rebaseConfig(app, ob, nb *image) ([]byte, error) {
	cfg, err := parseObject(app.cfgRaw)
	if err != nil {
		return nil, err
	}
	k := len(ob.manifest.Layers)
	diffIDs := append(append([]v1.Hash{}, nb.cfg.RootFS.DiffIDs...), app.cfg.RootFS.DiffIDs[k:]...)
	rootfs := object{}
	if raw, ok := cfg["rootfs"]; ok {
		if rootfs, err = parseObject(raw); err != nil {
			return nil, fmt.Errorf("rootfs: %w", err)
		}
	}
	if _, ok := rootfs["type"]; !ok {
		rootfs["type"] = json.RawMessage(`"layers"`)
	}
	if rootfs["diff_ids"], err = encode(diffIDs); err != nil {
		return nil, err
	}
	if err := cfg.set("rootfs", rootfs); err != nil {
		return nil, err
	}
	if len(app.cfg.History) > 0 {
		skip, err := baseHistoryLen(app.cfg.History, ob.cfg.History, k)
		if err != nil {
			return nil, err
		}
		var appH, nbH []json.RawMessage
		if err := rawList(app.cfgRaw, &appH); err != nil {
			return nil, err
		}
		if err := rawList(nb.cfgRaw, &nbH); err != nil {
			return nil, err
		}
		if err := cfg.set("history", append(nbH, appH[skip:]...)); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		key string
		v   any
	}{{"os.version", nb.cfg.OSVersion}, {"os.features", nb.cfg.OSFeatures}, {"variant", nb.cfg.Variant}} {
		if err := cfg.set(f.key, f.v); err != nil {
			return nil, err
		}
	}
	return encode(cfg)
}

// baseHistoryLen returns how many of the app's history entries belong to
// its base: the base's own entry count when the app's history starts with
// as many entries holding as many layers, else the entries up to the
// base's last layer.
func baseHistoryLen(app, base []v1.History, baseLayers int) (int, error) {
	layers := func(h []v1.History) int {
		n := 0
		for _, e := range h {
			if !e.EmptyLayer {
				n++
			}
		}
		return n
	}
	if len(base) <= len(app) && layers(base) == baseLayers && layers(app[:len(base)]) == baseLayers {
		return len(base), nil
	}
	if baseLayers == 0 {
		return 0, nil
	}
	n := 0
	for i, e := range app {
		if !e.EmptyLayer {
			n++
		}
		if n == baseLayers {
			return i + 1, nil
		}
	}
	return 0, fmt.Errorf("%w: the image's history records %d layers, fewer than the old base's %d", ErrRefused, n, baseLayers)
}

// rebaseManifest returns the app manifest with a new config and layers
// and base annotations naming the new base; other fields are kept.
func rebaseManifest(raw []byte, cfg v1.Descriptor, layers []v1.Descriptor, baseName string, baseDigest v1.Hash) ([]byte, error) {
	m, err := withLayers(raw, cfg, layers)
	if err != nil {
		return nil, err
	}
	if err := setBaseAnnotations(m, baseName, baseDigest, true); err != nil {
		return nil, err
	}
	return encode(m)
}

// rebaseIndex points the app index at the rebased manifests, with their
// new platforms, and leaves out the dropped entries.
func rebaseIndex(raw []byte, repl map[v1.Hash]*plan, drop map[v1.Hash]bool, baseName string, baseDigest v1.Hash) ([]byte, error) {
	idx, err := parseObject(raw)
	if err != nil {
		return nil, err
	}
	var entries []object
	if err := json.Unmarshal(idx["manifests"], &entries); err != nil {
		return nil, fmt.Errorf("manifests: %w", err)
	}
	out := []object{}
	for _, e := range entries {
		var d v1.Hash
		if err := json.Unmarshal(e["digest"], &d); err != nil {
			return nil, fmt.Errorf("entry digest: %w", err)
		}
		if drop[d] {
			continue
		}
		p, ok := repl[d]
		if !ok {
			return nil, fmt.Errorf("entry %s was not rebased", d)
		}
		if err := setEntry(e, p.desc, &p.platform); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if idx["manifests"], err = encode(out); err != nil {
		return nil, err
	}
	if err := setBaseAnnotations(idx, baseName, baseDigest, false); err != nil {
		return nil, err
	}
	return encode(idx)
}

// write copies a plan's blobs, then its config and manifest (tagged when
// it is the root).
func (r *rebaser) write(ctx context.Context, dst store.Target, p *plan, isRoot bool) error {
	res, err := r.o.blobs.Copy(ctx, p.newBase.src, dst, p.newBase.manifest.Layers)
	if err != nil {
		return fmt.Errorf("new base layers: %w", err)
	}
	r.res.Blobs.Add(res)
	k := len(p.oldBase.manifest.Layers)
	if res, err = r.o.blobs.Copy(ctx, p.app.src, dst, p.app.manifest.Layers[k:]); err != nil {
		return fmt.Errorf("app layers: %w", err)
	}
	r.res.Blobs.Add(res)
	if err := pushSmall(ctx, r.o.blobs, dst, p.cfgDesc, p.cfg); err != nil {
		return err
	}
	if isRoot {
		err = dst.Tag(ctx, p.desc, p.manifest)
	} else {
		err = dst.PushManifest(ctx, p.desc, p.manifest)
	}
	return err
}
