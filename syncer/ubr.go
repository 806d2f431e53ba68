package syncer

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/inspect"
	"github.com/ferry-dev/ferry/platform"
	"github.com/ferry-dev/ferry/transfer"
)

// keepUBR applies keep-ubr N (see platform.NewestUBRs for the grouping by
// build):
//
//   - the tags of a repository that name a single Windows image are grouped
//     by the platform and build of their config's os.version, and only the
//     tags of the N highest update revisions of each build stay in the
//     plan;
//   - a tag naming an index is narrowed to the entries of the N highest
//     update revisions of each build (of those its platforms select); as
//     with --platform, the destination then gets a smaller index.
//
// Images without a Windows os.version are left alone. The configs and
// indexes are read jobs at a time.
func keepUBR(ctx context.Context, imgs []*Image, jobs int) []*Image {
	var mu sync.Mutex
	plats := map[*Image]*v1.Platform{} // single images: their config's
	parallel(ctx, imgs, jobs, func(ctx context.Context, img *Image) {
		if img.keepUBR < 1 || img.Status == Failed {
			return
		}
		if img.planned.Source.MediaType.IsIndex() {
			if err := narrowIndex(ctx, img); err != nil {
				img.Status, img.Error = Failed, err.Error()
			}
			return
		}
		p, err := imagePlatform(ctx, img)
		if err != nil {
			img.Status, img.Error = Failed, err.Error()
			return
		}
		mu.Lock()
		plats[img] = p
		mu.Unlock()
	})
	var descs []v1.Descriptor // one per single-image tag, with its platform
	var owners []*Image
	repos := map[string][]int{} // repository -> indexes into descs
	for _, img := range imgs {
		p := plats[img]
		if p == nil || !strings.EqualFold(p.OS, "windows") || strings.Count(p.OSVersion, ".") < 3 {
			continue
		}
		repos[img.repoKey] = append(repos[img.repoKey], len(descs))
		descs = append(descs, v1.Descriptor{Platform: p})
		owners = append(owners, img)
	}
	drop := map[*Image]bool{}
	for _, hits := range repos {
		kept := map[int]bool{}
		for _, i := range platform.NewestUBRs(descs, hits, owners[hits[0]].keepUBR) {
			kept[i] = true
		}
		for _, i := range hits {
			if !kept[i] {
				drop[owners[i]] = true
			}
		}
	}
	out := imgs[:0]
	for _, img := range imgs {
		if drop[img] {
			img.src.Close()
			img.src = nil
			continue
		}
		out = append(out, img)
	}
	return out
}

// narrowIndex narrows an index image to the entries of the keepUBR
// highest update revisions of each build, and plans it again.
func narrowIndex(ctx context.Context, img *Image) error {
	raw, err := img.sourceRaw(ctx)
	if err != nil {
		return err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("%s: index %s: %w", img.Source, img.planned.Source.Digest, err)
	}
	hits := make([]int, len(idx.Manifests))
	for i := range hits {
		hits[i] = i
	}
	if len(img.specs) > 0 {
		if hits, err = platform.Select(idx.Manifests, img.specs); err != nil {
			return fmt.Errorf("%s: %w", img.Source, err)
		}
	}
	kept := platform.NewestUBRs(idx.Manifests, hits, img.keepUBR)
	if len(kept) == len(hits) {
		return nil
	}
	// Select exactly the kept entries: by full os.version for Windows
	// ones, by os/arch/variant for others.
	var specs []platform.Spec
	for _, i := range kept {
		p := idx.Manifests[i].Platform
		if p == nil {
			continue
		}
		specs = append(specs, platform.Spec{OS: strings.ToLower(p.OS), Architecture: p.Architecture, Variant: p.Variant, OSVersion: p.OSVersion})
	}
	img.specs = specs
	p, err := transfer.Plan(ctx, img.src, append(img.opts(), transfer.WithRoot(img.planned.Source, raw))...)
	if err != nil {
		return err
	}
	img.planned = p
	img.Digest = p.Written.Digest.String()
	return nil
}

// sourceRaw is the content of the image's source manifest or index.
func (img *Image) sourceRaw(ctx context.Context) ([]byte, error) {
	if img.planned.SourceRaw != nil {
		return img.planned.SourceRaw, nil
	}
	raw, err := img.src.FetchManifest(ctx, img.planned.Source)
	if err != nil {
		return nil, err
	}
	img.planned.SourceRaw = raw
	return raw, nil
}

// imagePlatform reads the platform of a single image from its config.
func imagePlatform(ctx context.Context, img *Image) (*v1.Platform, error) {
	raw, err := img.sourceRaw(ctx)
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: manifest %s: %w", img.Source, img.planned.Source.Digest, err)
	}
	cfgRaw, err := inspect.ReadConfig(ctx, img.src, m.Config)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", img.Source, err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
	if err != nil {
		return nil, fmt.Errorf("%s: config %s: %w", img.Source, m.Config.Digest, err)
	}
	return cfg.Platform(), nil
}
