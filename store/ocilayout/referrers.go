package ocilayout

// Referrers in an OCI layout. The image layout has no referrers API, and
// the image spec says nothing of how a layout records one; ferry does what
// oras (content/oci: every manifest pushed is an index.json entry, and
// referrers are found by walking the manifests index.json lists) and
// regclient's ocidir (regctl artifact list --slow-referrers scans the
// index.json entries for a subject) read: a referrer is an untagged
// index.json entry,
//
//	{"mediaType": …, "digest": …, "size": …,
//	 "artifactType": …, "annotations": {…}}
//
// beside the tagged images, and the referrers of a subject are the
// manifests, listed in index.json or in an index it lists, whose subject
// is that subject.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/mediatype"
	"github.com/ferry-dev/ferry/store"
)

// fact is what one manifest of the layout says: its subject and how the
// referrers API lists it, and the manifests it lists when an index.
type fact struct {
	ref      mediatype.Referrer
	isRef    bool // an OCI manifest or index (ref is set)
	children []v1.Descriptor
}

// factCache keeps the facts of manifests read, by digest: a digest names
// fixed bytes, so entries never go stale; the map is only bounded.
type factCache struct {
	mu sync.Mutex
	m  map[v1.Hash]fact
}

// maxFacts bounds a factCache.
const maxFacts = 1 << 14

// fact returns what the manifest desc names says, reading it once.
func (l *Layout) fact(ctx context.Context, desc v1.Descriptor) (fact, error) {
	l.facts.mu.Lock()
	f, ok := l.facts.m[desc.Digest]
	l.facts.mu.Unlock()
	if ok {
		return f, nil
	}
	raw, err := l.FetchManifest(ctx, desc)
	if err != nil {
		return fact{}, err
	}
	f.ref, f.isRef = mediatype.ParseReferrer(desc.MediaType, raw)
	if desc.MediaType.IsIndex() {
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return fact{}, fmt.Errorf("%s: index %s: %w", l.name, desc.Digest, err)
		}
		f.children = idx.Manifests
	}
	l.facts.mu.Lock()
	if l.facts.m == nil || len(l.facts.m) >= maxFacts {
		l.facts.m = map[v1.Hash]fact{}
	}
	l.facts.m[desc.Digest] = f
	l.facts.mu.Unlock()
	return f, nil
}

// referrerEntry is how the referrers API, and index.json, list the
// manifest desc names, which f describes.
func referrerEntry(desc v1.Descriptor, f fact) v1.Descriptor {
	return v1.Descriptor{MediaType: f.ref.MediaType, Digest: desc.Digest, Size: desc.Size,
		ArtifactType: f.ref.ArtifactType, Annotations: f.ref.Annotations}
}

// Referrers implements store.Referrers: the manifests whose subject is
// subject, among those index.json lists and, to mediatype.MaxIndexDepth,
// those the indexes it lists list; each once, in index.json's order, as
// the referrers API lists them (media type, digest, size, artifactType —
// an image manifest's config media type when it has none — and the
// manifest's annotations). A layout without index.json has none. A
// manifest listed but not in the layout (docker save lists platforms it
// did not write) is passed over.
func (l *Layout) Referrers(ctx context.Context, subject v1.Descriptor) ([]v1.Descriptor, error) {
	idx, err := l.ReadIndex()
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []v1.Descriptor
	seen := map[v1.Hash]bool{}
	level := idx.Manifests
	for depth := 0; len(level) > 0 && depth <= mediatype.MaxIndexDepth; depth++ {
		var next []v1.Descriptor
		for _, d := range level {
			if seen[d.Digest] || (!d.MediaType.IsImage() && !d.MediaType.IsIndex()) {
				continue
			}
			seen[d.Digest] = true
			f, err := l.fact(ctx, d)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("referrers of %s in %s: %w", subject.Digest, l.name, err)
			}
			if f.isRef && f.ref.Subject == subject.Digest.String() {
				out = append(out, referrerEntry(d, f))
			}
			next = append(next, f.children...)
		}
		level = next
	}
	return out, nil
}

// AddReferrer implements store.Referrers: it lists referrer, a manifest
// the layout holds whose subject is subject, in index.json as an untagged
// entry, with the artifactType and annotations the referrers API gives it
// (read from the manifest), unless index.json lists it already. The
// file is replaced atomically, as Tag replaces it.
func (l *Layout) AddReferrer(ctx context.Context, subject, referrer v1.Descriptor) error {
	if l.ro {
		return fmt.Errorf("%s is read-only: cannot record referrer %s", l.name, referrer.Digest)
	}
	f, err := l.fact(ctx, v1.Descriptor{MediaType: referrer.MediaType, Digest: referrer.Digest, Size: referrer.Size})
	if err != nil {
		return fmt.Errorf("referrer %s of %s: %w", referrer.Digest, subject.Digest, err)
	}
	if !f.isRef || f.ref.Subject != subject.Digest.String() {
		return fmt.Errorf("%s: manifest %s is not a referrer of %s (its subject: %q)", l.name, referrer.Digest, subject.Digest, f.ref.Subject)
	}
	entry := referrerEntry(referrer, f)
	added := false
	err = l.updateIndex(func(idx *v1.IndexManifest) bool {
		for _, d := range idx.Manifests {
			if d.Digest == entry.Digest {
				return false
			}
		}
		idx.Manifests = append(idx.Manifests, entry)
		added = true
		return true
	})
	if err != nil {
		return fmt.Errorf("referrer %s of %s: %w", referrer.Digest, subject.Digest, err)
	}
	if added {
		// Only the entries this Layout wrote are Close's to remove:
		// one another writer listed first stays theirs.
		l.wmu.Lock()
		if l.listed == nil {
			l.listed = map[v1.Hash]bool{}
		}
		l.listed[entry.Digest] = true
		l.wmu.Unlock()
	}
	return nil
}

// removeListedOnly removes index.json when it lists nothing but (untagged)
// referrers in listed, and reports whether the layout now has no
// index.json: Close then removes the rest of what was written.
func (l *Layout) removeListedOnly(listed map[v1.Hash]bool) bool {
	defer l.lockIndex()()
	p := filepath.Join(l.dir, "index.json")
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return true
	}
	idx, err := l.ReadIndex()
	if err != nil || len(listed) == 0 {
		return false
	}
	for _, d := range idx.Manifests {
		if !listed[d.Digest] || d.Annotations[RefNameAnnotation] != "" {
			return false
		}
	}
	return os.Remove(p) == nil
}

// dropReferrers removes from match the entries that are referrers (have
// a subject), for resolving the layout's only image: the signatures and
// SBOMs listed beside it are not images of their own. An entry that
// cannot be read stays.
func (l *Layout) dropReferrers(ctx context.Context, match []v1.Descriptor) []v1.Descriptor {
	var out []v1.Descriptor
	for _, d := range match {
		if f, err := l.fact(ctx, d); err == nil && f.isRef && f.ref.Subject != "" {
			continue
		}
		out = append(out, d)
	}
	return out
}
