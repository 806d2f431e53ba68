package server

// --proxy-foreign localize. containerd tries a foreign layer's urls before
// the registry and gives up on a connection error (containerd/containerd
// #7676), so an air-gapped containerd node cannot pull an image whose
// manifest still names Microsoft's URLs, even from a mirror holding every
// blob. With localize, a tag resolves to a localized manifest: each
// foreign layer made the ordinary layer type of the same encoding, its
// urls dropped; an index's entries point at its localized manifests. The
// localized manifests are stored in the mirror beside the upstream ones
// (which the foreign blob lookup reads), and are derived again, to the
// same bytes, whenever a tag is resolved and the result is not known:
// offline too, from the cached upstream manifests. A manifest asked for by
// its upstream digest is the upstream's, unchanged.
//
// An index child that cannot be read (offline, a child never cached: a
// cache filled in keep mode, or by importing some platforms only) keeps
// its upstream entry: the index is localized for the children the mirror
// can give, as keep mode serves what it holds, rather than refused whole.
// Such a partial result is not remembered: it is derived again, and
// whole once the children can be read.

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"

	"github.com/ferry-dev/ferry/mediatype"
)

// localized remembers localized manifests by repository and upstream
// digest: both are content-addressed, so an entry never goes stale.
type localized struct {
	mu sync.Mutex
	m  map[string]v1.Descriptor
}

func (l *localized) get(key string) (v1.Descriptor, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d, ok := l.m[key]
	return d, ok
}

func (l *localized) put(key string, d v1.Descriptor) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil || len(l.m) >= maxCachedManifests {
		l.m = map[string]v1.Descriptor{}
	}
	l.m[key] = d
}

// localizeTag returns the descriptor of the localized manifest for the
// upstream manifest d of repository r, storing it in the cache; d itself
// when nothing in it is foreign.
func (m *mirror) localizeTag(ctx context.Context, r *mirrorRepo, d v1.Descriptor) (v1.Descriptor, error) {
	ms, err := r.Manifests(ctx)
	if err != nil {
		return v1.Descriptor{}, err
	}
	local, err := r.local.Manifests(ctx, storage.SkipLayerVerification())
	if err != nil {
		return v1.Descriptor{}, err
	}
	ld, _, err := m.localizeManifest(ctx, r.named.Name(), ms, local, d.Digest)
	return ld, err
}

// localizeManifest localizes manifest dg, read through ms (the upstream's,
// through the cache) and stored through local, and says whether the
// result is partial: an index some of whose children could not be read,
// kept as upstream.
func (m *mirror) localizeManifest(ctx context.Context, repo string, ms, local distribution.ManifestService, dg digest.Digest) (v1.Descriptor, bool, error) {
	key := repo + "@" + dg.String()
	if d, ok := m.loc.get(key); ok {
		return d, false, nil
	}
	mf, err := ms.Get(ctx, dg)
	if err != nil {
		return v1.Descriptor{}, false, err
	}
	mt, payload, err := mf.Payload()
	if err != nil {
		return v1.Descriptor{}, false, err
	}
	orig := v1.Descriptor{MediaType: mt, Digest: dg, Size: int64(len(payload))}
	var doc map[string]any
	if err := json.Unmarshal(payload, &doc); err != nil {
		return v1.Descriptor{}, false, fmt.Errorf("localize manifest %s: %w", dg, err)
	}
	changed, partial := false, false
	if layers, ok := doc["layers"].([]any); ok {
		for _, l := range layers {
			l, _ := l.(map[string]any)
			lmt, _ := l["mediaType"].(string)
			if to, ok := mediatype.Distributable(lmt); ok {
				l["mediaType"] = to
				delete(l, "urls")
				changed = true
			}
		}
	}
	if children, ok := doc["manifests"].([]any); ok {
		for _, c := range children {
			c, _ := c.(map[string]any)
			cd, err := digest.Parse(fmt.Sprint(c["digest"]))
			if err != nil {
				return v1.Descriptor{}, false, fmt.Errorf("localize index %s: %w", dg, err)
			}
			ld, part, err := m.localizeManifest(ctx, repo, ms, local, cd)
			if err != nil {
				if ctx.Err() != nil {
					return v1.Descriptor{}, false, err
				}
				logrus.WithField("repository", repo).Warnf("mirror: localize index %s: child %s kept as upstream: %v", dg, cd, err)
				partial = true
				continue
			}
			partial = partial || part
			if ld.Digest != cd {
				c["digest"], c["size"] = ld.Digest.String(), ld.Size
				changed = true
			}
		}
	}
	remember := func(d v1.Descriptor) {
		if !partial {
			m.loc.put(key, d)
		}
	}
	if !changed {
		remember(orig)
		return orig, partial, nil
	}
	out, err := json.MarshalIndent(doc, "", "   ")
	if err != nil {
		return v1.Descriptor{}, false, err
	}
	lm, desc, err := distribution.UnmarshalManifest(mt, out)
	if err != nil {
		return v1.Descriptor{}, false, fmt.Errorf("localize manifest %s: %w", dg, err)
	}
	if _, err := local.Put(ctx, lm); err != nil {
		return v1.Descriptor{}, false, fmt.Errorf("store localized manifest of %s: %w", dg, err)
	}
	desc = v1.Descriptor{MediaType: mt, Digest: desc.Digest, Size: desc.Size}
	remember(desc)
	return desc, partial, nil
}
