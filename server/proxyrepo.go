package server

import (
	"context"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/ocischema"
	"github.com/distribution/distribution/v3/manifest/schema2"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// mirrorRepo is one cached repository: distribution's proxy repository
// (px) while its upstream can be reached, the local repository
// read-only otherwise; tags are checked upstream at most every TTL.
type mirrorRepo struct {
	m     *mirror
	up    *upstream
	named reference.Named         // the local name, PREFIX/REPO
	local distribution.Repository // the cache
	px    distribution.Repository // nil while the upstream cannot be reached
}

func (m *mirror) newRepo(up *upstream, named reference.Named, local, px distribution.Repository) *mirrorRepo {
	return &mirrorRepo{m: m, up: up, named: named, local: local, px: px}
}

// Named implements distribution.Repository.
func (r *mirrorRepo) Named() reference.Named { return r.named }

// Manifests implements distribution.Repository.
func (r *mirrorRepo) Manifests(ctx context.Context, opts ...distribution.ManifestServiceOption) (distribution.ManifestService, error) {
	if r.px != nil {
		ms, err := r.px.Manifests(ctx, opts...)
		if err != nil {
			return nil, err
		}
		return prefetchingManifests{ms, r}, nil
	}
	ms, err := r.local.Manifests(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return readOnlyManifests{ms}, nil
}

// Blobs implements distribution.Repository: the cache's blobs only. A
// blob it does not hold is answered 404, which the front handler takes
// as its cue to fetch it (proxyblobs.go says why not through
// distribution's proxy).
func (r *mirrorRepo) Blobs(ctx context.Context) distribution.BlobStore {
	return readOnlyBlobs{r.local.Blobs(ctx)}
}

// Tags implements distribution.Repository.
func (r *mirrorRepo) Tags(ctx context.Context) distribution.TagService {
	t := &mirrorTags{r: r, local: r.local.Tags(ctx)}
	if r.px != nil {
		t.remote = r.px.Tags(ctx)
	}
	return t
}

// mirrorTags resolves tags: from the cache while the tag was checked
// upstream less than the TTL ago, else through distribution's proxy (which
// asks upstream and falls back to the cache).
type mirrorTags struct {
	r      *mirrorRepo
	local  distribution.TagService
	remote distribution.TagService // nil while the upstream cannot be reached
}

// Get implements distribution.TagService.
func (t *mirrorTags) Get(ctx context.Context, tag string) (v1.Descriptor, error) {
	d, err := t.get(ctx, tag)
	if err != nil || !t.r.m.localize {
		return d, err
	}
	return t.r.m.localizeTag(ctx, t.r, d)
}

func (t *mirrorTags) get(ctx context.Context, tag string) (v1.Descriptor, error) {
	repo := t.r.named.Name()
	if t.remote == nil || t.r.up.fresh(repo, tag, t.r.m.ttl) {
		d, err := t.local.Get(ctx, tag)
		if err != nil {
			if t.r.m.waitStored(ctx, tagKey(repo, tag)) { // on its way to the storage
				d, err = t.local.Get(ctx, tag)
			}
		}
		if err == nil || t.remote == nil {
			return d, err
		}
	}
	d, err := t.remote.Get(ctx, tag)
	if err == nil {
		// Also when distribution fell back to the cache: an
		// unreachable upstream is asked again after the TTL, not on
		// every request.
		t.r.up.markChecked(repo, tag)
	}
	return d, err
}

// Tag implements distribution.TagService: a mirror is not a push target.
func (t *mirrorTags) Tag(context.Context, string, v1.Descriptor) error {
	return distribution.ErrUnsupported
}

// Untag implements distribution.TagService.
func (t *mirrorTags) Untag(context.Context, string) error { return distribution.ErrUnsupported }

// All implements distribution.TagService.
func (t *mirrorTags) All(ctx context.Context) ([]string, error) {
	if t.remote != nil {
		return t.remote.All(ctx)
	}
	return t.local.All(ctx)
}

// List implements distribution.TagService.
func (t *mirrorTags) List(ctx context.Context, limit int, last string) ([]string, error) {
	if t.remote != nil {
		return t.remote.List(ctx, limit, last)
	}
	return t.local.List(ctx, limit, last)
}

// Lookup implements distribution.TagService.
func (t *mirrorTags) Lookup(ctx context.Context, d v1.Descriptor) ([]string, error) {
	return t.local.Lookup(ctx, d)
}

// fresh reports whether the local repository's tag was checked upstream
// less than ttl ago.
func (u *upstream) fresh(repo, tag string, ttl time.Duration) bool {
	at, ok := u.lastChecked(repo, tag)
	return ok && time.Since(at) < ttl
}

// lastChecked returns when the local repository's tag was last checked
// upstream; false when it has not been since the process started (or
// since the record was cleared). fresh and the web view both read it.
func (u *upstream) lastChecked(repo, tag string) (time.Time, bool) {
	u.checkedMu.Lock()
	defer u.checkedMu.Unlock()
	at, ok := u.checked[repo+":"+tag]
	return at, ok
}

// markChecked records that the local repository's tag was checked
// upstream now.
func (u *upstream) markChecked(repo, tag string) {
	u.checkedMu.Lock()
	defer u.checkedMu.Unlock()
	if len(u.checked) >= 1<<16 {
		clear(u.checked)
	}
	u.checked[repo+":"+tag] = time.Now()
}

// prefetchingManifests is distribution's proxy manifest service, which
// also starts fetching the config of an image manifest it serves into
// the cache, beside the client's layer requests: every client asks for
// the config (docker and containerd first, crane last), and one asked
// for at the end of a cold pull waited on the upstream while the mirror
// was storing the layers (30 ms of a 0.35 s pull on the bench machine).
type prefetchingManifests struct {
	distribution.ManifestService
	r *mirrorRepo
}

// Get implements distribution.ManifestService.
func (p prefetchingManifests) Get(ctx context.Context, dgst digest.Digest, opts ...distribution.ManifestServiceOption) (distribution.Manifest, error) {
	mf, err := p.ManifestService.Get(ctx, dgst, opts...)
	if err != nil {
		return mf, err
	}
	var cfg digest.Digest
	switch m := mf.(type) {
	case *ocischema.DeserializedManifest:
		cfg = m.Config.Digest
	case *schema2.DeserializedManifest:
		cfg = m.Config.Digest
	}
	if cfg != "" {
		if _, err := p.r.local.Blobs(ctx).Stat(ctx, cfg); err != nil {
			p.r.m.prefetch(p.r.named.Name(), cfg)
		}
	}
	return mf, nil
}

// readOnlyManifests is the cache's manifest service, refusing writes.
type readOnlyManifests struct{ distribution.ManifestService }

// Put implements distribution.ManifestService.
func (readOnlyManifests) Put(context.Context, distribution.Manifest, ...distribution.ManifestServiceOption) (digest.Digest, error) {
	return "", distribution.ErrUnsupported
}

// Delete implements distribution.ManifestService.
func (readOnlyManifests) Delete(context.Context, digest.Digest) error {
	return distribution.ErrUnsupported
}

// readOnlyBlobs is the cache's blob store, refusing writes.
type readOnlyBlobs struct{ distribution.BlobStore }

// Put implements distribution.BlobStore.
func (readOnlyBlobs) Put(context.Context, string, []byte) (v1.Descriptor, error) {
	return v1.Descriptor{}, distribution.ErrUnsupported
}

// Create implements distribution.BlobStore.
func (readOnlyBlobs) Create(context.Context, ...distribution.BlobCreateOption) (distribution.BlobWriter, error) {
	return nil, distribution.ErrUnsupported
}

// Resume implements distribution.BlobStore.
func (readOnlyBlobs) Resume(context.Context, string) (distribution.BlobWriter, error) {
	return nil, distribution.ErrUnsupported
}

// Delete implements distribution.BlobStore.
func (readOnlyBlobs) Delete(context.Context, digest.Digest) error {
	return distribution.ErrUnsupported
}
