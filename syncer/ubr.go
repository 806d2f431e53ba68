package syncer

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/inspect"
	"github.com/ferry-dev/ferry/platform"
)

// keepUBR applies keep-ubr: in each repository that sets it to N, the
// tags naming a single Windows image are grouped by os/architecture and
// build (the first three fields of os.version, 10.0.17763), and only the
// tags whose update revision (the fourth field) is among the N highest
// of their group stay; the others are dropped from the plan. Tags of
// indexes and of non-Windows images are kept.
func keepUBR(ctx context.Context, imgs []*Image) []*Image {
	type tagged struct {
		img     *Image
		group   string
		version string
	}
	groups := map[string][]tagged{}
	for _, img := range imgs {
		if img.keepUBR < 1 || img.Status == Failed || img.planned == nil || img.planned.Source.MediaType.IsIndex() {
			continue
		}
		p, err := imagePlatform(ctx, img)
		if err != nil {
			img.Status, img.Error = Failed, err.Error()
			continue
		}
		if p == nil || !strings.EqualFold(p.OS, "windows") || strings.Count(p.OSVersion, ".") < 3 {
			continue
		}
		build := p.OSVersion[:strings.LastIndex(p.OSVersion, ".")]
		key := img.repoKey + " " + p.Architecture + " " + build
		groups[key] = append(groups[key], tagged{img, key, p.OSVersion})
	}
	drop := map[*Image]bool{}
	for _, g := range groups {
		var versions []string
		seen := map[string]bool{}
		for _, t := range g {
			if !seen[t.version] {
				seen[t.version] = true
				versions = append(versions, t.version)
			}
		}
		sort.Slice(versions, func(i, j int) bool { return platform.CompareOSVersion(versions[i], versions[j]) > 0 })
		n := g[0].img.keepUBR
		if len(versions) <= n {
			continue
		}
		kept := map[string]bool{}
		for _, v := range versions[:n] {
			kept[v] = true
		}
		for _, t := range g {
			if !kept[t.version] {
				drop[t.img] = true
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

// imagePlatform reads the platform of a single image from its config.
func imagePlatform(ctx context.Context, img *Image) (*v1.Platform, error) {
	raw := img.planned.SourceRaw
	if raw == nil {
		var err error
		if raw, err = img.src.FetchManifest(ctx, img.planned.Source); err != nil {
			return nil, err
		}
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
