package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	ggtypes "github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/store"
)

var _ store.Referrers = (*Repo)(nil)

// ReferrersTag is the tag under which the referrers tag schema of OCI
// distribution-spec 1.1 keeps the index of subject's referrers, for
// registries without the referrers API: sha256-<hex>.
func ReferrersTag(subject v1.Hash) string {
	return subject.Algorithm + "-" + subject.Hex
}

// referrersAPI asks the referrers API for subject's referrers, following
// Link pagination; ok is false when the registry has no such API (it
// answers 404 where a registry with it answers an empty list).
func (r *Repo) referrersAPI(ctx context.Context, subject v1.Hash) ([]v1.Descriptor, bool, error) {
	next := r.url("referrers", subject.String())
	var all []v1.Descriptor
	for next != "" {
		u := next
		resp, err := r.c.do(ctx, func() (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err == nil {
				req.Header.Set("Accept", string(ggtypes.OCIImageIndex))
			}
			return req, err
		}, http.StatusOK)
		if errors.Is(err, store.ErrNotFound) && len(all) == 0 {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("referrers of %s@%s: %w", r.repo, subject, err)
		}
		var page v1.IndexManifest
		err = json.NewDecoder(io.LimitReader(resp.Body, MaxManifestSize)).Decode(&page)
		link := resp.Header.Get("Link")
		resp.Body.Close()
		if err != nil {
			return nil, false, fmt.Errorf("referrers of %s@%s: %w", r.repo, subject, err)
		}
		all = append(all, page.Manifests...)
		if next, err = nextLink(u, link); err != nil {
			return nil, false, fmt.Errorf("referrers of %s@%s: %w", r.repo, subject, err)
		}
	}
	return all, true, nil
}

// referrersIndex reads the referrers tag schema's index for subject; an
// absent tag is an empty index.
func (r *Repo) referrersIndex(ctx context.Context, subject v1.Hash) (*v1.IndexManifest, error) {
	raw, _, err := r.getManifest(ctx, ReferrersTag(subject))
	if errors.Is(err, store.ErrNotFound) {
		return &v1.IndexManifest{SchemaVersion: 2, MediaType: ggtypes.OCIImageIndex}, nil
	}
	if err != nil {
		return nil, err
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("referrers index %s:%s: %w", r.repo, ReferrersTag(subject), err)
	}
	return &idx, nil
}

// Referrers implements store.Referrers: through the referrers API, or,
// where the registry has none, the index the referrers tag schema keeps.
func (r *Repo) Referrers(ctx context.Context, subject v1.Descriptor) ([]v1.Descriptor, error) {
	list, ok, err := r.referrersAPI(ctx, subject.Digest)
	if err != nil || ok {
		return list, err
	}
	idx, err := r.referrersIndex(ctx, subject.Digest)
	if err != nil {
		return nil, err
	}
	return idx.Manifests, nil
}

// AddReferrer implements store.Referrers. A registry with the referrers
// API lists a manifest pushed with a subject by itself; for one without,
// referrer is added to the index under the subject's referrers tag.
func (r *Repo) AddReferrer(ctx context.Context, subject, referrer v1.Descriptor) error {
	if _, ok, err := r.referrersAPI(ctx, subject.Digest); err != nil || ok {
		return err
	}
	idx, err := r.referrersIndex(ctx, subject.Digest)
	if err != nil {
		return err
	}
	for _, d := range idx.Manifests {
		if d.Digest == referrer.Digest {
			return nil
		}
	}
	idx.SchemaVersion, idx.MediaType = 2, ggtypes.OCIImageIndex
	idx.Manifests = append(idx.Manifests, v1.Descriptor{MediaType: referrer.MediaType, Digest: referrer.Digest, Size: referrer.Size,
		ArtifactType: referrer.ArtifactType, Annotations: referrer.Annotations})
	raw, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	desc := blob.DescriptorOf(raw, ggtypes.OCIImageIndex)
	if err := r.putManifest(ctx, ReferrersTag(subject.Digest), desc, raw); err != nil {
		return fmt.Errorf("referrers tag %s:%s: %w", r.repo, ReferrersTag(subject.Digest), err)
	}
	return nil
}
