package regroot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/distribution/distribution/v3"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ggtypes "github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/internal/regstorage/aliaslinks"
	"github.com/ferry-dev/ferry/store"
)

// Repo is one repository of a root, bound to one tag. It is a
// store.Source, a store.Target, a store.Lister and a store.Deleter.
type Repo struct {
	root *Root
	name string
	tag  string
	repo distribution.Repository

	// Renames are the manifests stored by another digest (the root
	// stores every manifest by its sha256 digest).
	store.Renames
}

var (
	_ store.Source  = (*Repo)(nil)
	_ store.Target  = (*Repo)(nil)
	_ store.Lister  = (*Repo)(nil)
	_ store.Deleter = (*Repo)(nil)
	_ store.Named   = (*Repo)(nil)
	_ store.Renamer = (*Repo)(nil)
)

// Repository binds to the repository name and tag (as ParseName returns
// them). The repository need not exist yet; writing creates it.
func (r *Root) Repository(ctx context.Context, name, tag string) (*Repo, error) {
	named, err := checkName(name, tag)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", name, err)
	}
	repo, err := r.ns.Repository(ctx, named)
	if err != nil {
		return nil, fmt.Errorf("repository %s in %s: %w", name, r.dir, err)
	}
	return &Repo{root: r, name: name, tag: tag, repo: repo}, nil
}

// Name returns the location for messages: ROOT/NAME:TAG.
func (p *Repo) Name() string {
	if p.tag == "" {
		return p.root.dir + "/" + p.name
	}
	return p.root.dir + "/" + p.name + ":" + p.tag
}

// Close implements store.Source and store.Target; there is nothing to
// release.
func (p *Repo) Close() error { return nil }

func toDistribution(d v1.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: string(d.MediaType), Digest: digest.Digest(d.Digest.String()), Size: d.Size}
}

// notFound wraps store.ErrNotFound for distribution's not-found errors.
func notFound(err error) error {
	var (
		tagUnknown  distribution.ErrTagUnknown
		revUnknown  distribution.ErrManifestUnknownRevision
		repoUnknown distribution.ErrRepositoryUnknown
	)
	if errors.Is(err, distribution.ErrBlobUnknown) || errors.As(err, &tagUnknown) ||
		errors.As(err, &revUnknown) || errors.As(err, &repoUnknown) {
		return fmt.Errorf("%w (%w)", store.ErrNotFound, err)
	}
	return err
}

// Resolve implements store.Source: the manifest or index the tag points at.
func (p *Repo) Resolve(ctx context.Context) (v1.Descriptor, error) {
	if p.tag == "" {
		return v1.Descriptor{}, fmt.Errorf("%s: no tag to resolve", p.Name())
	}
	d, err := p.repo.Tags(ctx).Get(ctx, p.tag)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%s: %w", p.Name(), notFound(err))
	}
	h, err := v1.NewHash(d.Digest.String())
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%s: tag link: %w", p.Name(), err)
	}
	mt, raw, err := p.manifest(ctx, h)
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: ggtypes.MediaType(mt), Digest: h, Size: int64(len(raw))}, nil
}

// manifest reads a manifest of the repository by digest and checks it
// hashes to it.
func (p *Repo) manifest(ctx context.Context, h v1.Hash) (string, []byte, error) {
	ms, err := p.repo.Manifests(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", p.Name(), err)
	}
	m, err := ms.Get(ctx, digest.Digest(h.String()))
	if err != nil {
		return "", nil, fmt.Errorf("manifest %s in %s: %w", h, p.Name(), notFound(err))
	}
	mt, raw, err := m.Payload()
	if err != nil {
		return "", nil, fmt.Errorf("manifest %s in %s: %w", h, p.Name(), err)
	}
	if err := blob.CheckBytes(h, raw); err != nil {
		return "", nil, fmt.Errorf("manifest %s in %s: %w", h, p.Name(), err)
	}
	return mt, raw, nil
}

// FetchManifest implements store.Source.
func (p *Repo) FetchManifest(ctx context.Context, desc v1.Descriptor) ([]byte, error) {
	_, raw, err := p.manifest(ctx, desc.Digest)
	return raw, err
}

// FetchBlob implements store.Source: it streams the blob from the root,
// when the repository links it.
func (p *Repo) FetchBlob(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
	rc, err := p.repo.Blobs(ctx).Open(ctx, digest.Digest(desc.Digest.String()))
	if err != nil {
		return nil, fmt.Errorf("blob %s in %s: %w", desc.Digest, p.Name(), notFound(err))
	}
	return rc, nil
}

// HasBlob implements store.Target: the repository links the blob and it
// has the declared size.
func (p *Repo) HasBlob(ctx context.Context, desc v1.Descriptor) (bool, error) {
	d, err := p.repo.Blobs(ctx).Stat(ctx, digest.Digest(desc.Digest.String()))
	if errors.Is(err, distribution.ErrBlobUnknown) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("blob %s in %s: %w", desc.Digest, p.Name(), err)
	}
	return d.Size == desc.Size, nil
}

// PushBlob implements store.Target. The bytes stream into an upload of
// distribution's blob store, checked against desc as they go: an upload
// whose bytes do not match is cancelled before it is committed (a failed
// commit leaves its upload behind: distribution cannot cancel it once
// closed). The commit checks size and digest again and moves the blob
// into place.
func (p *Repo) PushBlob(ctx context.Context, desc v1.Descriptor, r io.Reader) (err error) {
	bs := p.repo.Blobs(ctx)
	w, err := bs.Create(ctx)
	if err != nil {
		return fmt.Errorf("blob %s to %s: %w", desc.Digest, p.Name(), err)
	}
	defer func() {
		if err != nil {
			_ = w.Cancel(ctx)
		}
	}()
	if _, err = blob.CopyVerified(w, r, desc); err != nil {
		return fmt.Errorf("blob %s to %s: %w", desc.Digest, p.Name(), err)
	}
	if _, err = w.Commit(ctx, toDistribution(desc)); err != nil {
		var bad distribution.ErrBlobInvalidDigest
		if errors.As(err, &bad) {
			err = fmt.Errorf("%w (%w)", blob.ErrDigestMismatch, err)
		}
		return fmt.Errorf("blob %s to %s: %w", desc.Digest, p.Name(), err)
	}
	return nil
}

// PushManifest implements store.Target: distribution's manifest service
// stores it after checking that what it references is present (foreign
// layers aside, when their URLs pass the root's allow and deny lists).
func (p *Repo) PushManifest(ctx context.Context, desc v1.Descriptor, raw []byte) error {
	_, err := p.putManifest(ctx, desc, raw)
	return err
}

// putManifest stores raw and returns its descriptor as the root names it.
// distribution names a manifest by its sha256 digest whatever it is known
// by, so a descriptor in another algorithm (sha512) is checked against the
// bytes in its own algorithm, as is the root's answer, rather than
// compared with it as a string.
func (p *Repo) putManifest(ctx context.Context, desc v1.Descriptor, raw []byte) (v1.Descriptor, error) {
	if err := blob.CheckBytes(desc.Digest, raw); err != nil {
		return v1.Descriptor{}, fmt.Errorf("manifest %s to %s: %w", desc.Digest, p.Name(), err)
	}
	m, _, err := distribution.UnmarshalManifest(string(desc.MediaType), raw)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("manifest %s to %s: %w", desc.Digest, p.Name(), err)
	}
	ms, err := p.repo.Manifests(ctx)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("manifest %s to %s: %w", desc.Digest, p.Name(), err)
	}
	got, err := ms.Put(ctx, m)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("manifest %s to %s: %w", desc.Digest, p.Name(), p.classifyPut(err))
	}
	stored := desc
	if got.String() != desc.Digest.String() {
		h, err := v1.NewHash(got.String())
		if err != nil || !blob.Names(h, raw) {
			return v1.Descriptor{}, fmt.Errorf("manifest %s to %s: stored as %s", desc.Digest, p.Name(), got)
		}
		stored.Digest = h
		p.Remember(desc.Digest, h)
		// A revision alias, as ferry serve writes for a manifest pushed
		// by a sha512 digest: the manifest is then found by that digest
		// too, and so is an index naming it so.
		if err := aliaslinks.Write(ctx, p.root.driver, p.name, aliaslinks.Revisions, digest.Digest(desc.Digest.String()), got); err != nil {
			return v1.Descriptor{}, fmt.Errorf("manifest %s to %s: %w", desc.Digest, p.Name(), err)
		}
	}
	return stored, nil
}

// classifyPut marks distribution's refusal of a foreign URL with
// store.ErrForeignRefused.
func (p *Repo) classifyPut(err error) error {
	var errs distribution.ErrManifestVerification
	if errors.As(err, &errs) {
		for _, e := range errs {
			if strings.Contains(e.Error(), "invalid URL") {
				return fmt.Errorf("%w: a foreign layer's URL does not pass the root's allow/deny lists (%w)", store.ErrForeignRefused, err)
			}
		}
	}
	return err
}

// Tag implements store.Target: it stores the manifest, then points the tag
// at it. Without a tag the manifest is stored untagged.
func (p *Repo) Tag(ctx context.Context, desc v1.Descriptor, raw []byte) error {
	stored, err := p.putManifest(ctx, desc, raw)
	if err != nil {
		return err
	}
	if p.tag == "" {
		return nil
	}
	// The tag links the manifest under the digest the root stored it by:
	// a link in another algorithm would name no revision.
	if err := p.repo.Tags(ctx).Tag(ctx, p.tag, toDistribution(stored)); err != nil {
		return fmt.Errorf("tag %s: %w", p.Name(), err)
	}
	return nil
}

// Tags implements store.Lister.
func (p *Repo) Tags(ctx context.Context) ([]string, error) {
	tags, err := p.repo.Tags(ctx).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("tags of %s: %w", p.Name(), notFound(err))
	}
	return tags, nil
}

// Delete implements store.Deleter as the registry's DELETE does: it
// resolves the tag, removes every tag pointing at that manifest, then the
// manifest's revision link. The blobs stay until GC.
func (p *Repo) Delete(ctx context.Context) error {
	desc, err := p.Resolve(ctx)
	if err != nil {
		return err
	}
	ts := p.repo.Tags(ctx)
	tags, err := ts.Lookup(ctx, toDistribution(desc))
	if err != nil {
		return fmt.Errorf("delete %s: %w", p.Name(), err)
	}
	for _, t := range tags {
		if err := ts.Untag(ctx, t); err != nil {
			return fmt.Errorf("delete %s: untag %s: %w", p.Name(), t, err)
		}
	}
	ms, err := p.repo.Manifests(ctx)
	if err != nil {
		return fmt.Errorf("delete %s: %w", p.Name(), err)
	}
	if err := ms.Delete(ctx, digest.Digest(desc.Digest.String())); err != nil {
		return fmt.Errorf("delete %s: %w", p.Name(), notFound(err))
	}
	return nil
}
