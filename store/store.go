// Package store defines the one interface behind which every place images
// live — a registry repository, an OCI layout, an archive, a registry
// storage root — so that the copy engine never knows which it talks to.
//
// Every method that can block takes a context first. Capabilities only some
// backends have (mounting across repositories, listing tags) are separate
// small interfaces, checked with a type assertion where they are used.
package store

import (
	"context"
	"errors"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Sentinel errors, matched with errors.Is. Backends wrap them with context.
var (
	// ErrNotFound means the store does not hold the manifest, blob or tag.
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized means the store refused the credentials (or their absence).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForeignRefused means a registry refused a manifest because of its
	// foreign (non-distributable) layers.
	ErrForeignRefused = errors.New("manifest refused because of its foreign layers")
	// ErrManifestRefused means the destination refused a manifest for what
	// it references: blobs or manifests it lacks, or URLs its validation
	// rejects. The copy engine explains it as ErrForeignRefused when the
	// manifest has foreign layers. Backends keep the destination's own error
	// (and message) in the chain.
	ErrManifestRefused = errors.New("the destination refused the manifest for what it references")
)

// Source is a place images are read from. It is bound to one location:
// Resolve returns the manifest or index that location names.
type Source interface {
	// Resolve returns the descriptor (media type, digest, size) of the
	// manifest or index the location names.
	Resolve(ctx context.Context) (v1.Descriptor, error)
	// FetchManifest returns the raw bytes of the manifest or index desc
	// names. Implementations must check the bytes against desc.Digest.
	FetchManifest(ctx context.Context, desc v1.Descriptor) ([]byte, error)
	// FetchBlob streams the blob desc names. The error wraps ErrNotFound
	// when the store does not hold it. Callers verify what they read.
	FetchBlob(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error)
	// Close releases what the source holds open.
	Close() error
}

// Target is a place images are written to, bound to one location. Writes
// happen in dependency order — blobs, then manifests, then the index — and
// Tag comes last, so that a failed copy leaves no tag behind.
type Target interface {
	// HasBlob reports whether the target already holds the blob.
	HasBlob(ctx context.Context, desc v1.Descriptor) (bool, error)
	// PushBlob stores the blob read from r, which yields exactly desc.Size
	// bytes. Implementations must not keep the blob under its final name
	// unless its size and digest match.
	PushBlob(ctx context.Context, desc v1.Descriptor, r io.Reader) error
	// PushManifest stores a manifest or index by digest, untagged.
	PushManifest(ctx context.Context, desc v1.Descriptor, raw []byte) error
	// Tag stores the root manifest or index and points the location's tag
	// (if it has one) at it. It is the last write of a copy.
	Tag(ctx context.Context, desc v1.Descriptor, raw []byte) error
	// Close finishes and releases the target.
	Close() error
}

// Mounter is a Target that can link a blob from another repository of the
// same registry without transferring it.
type Mounter interface {
	// MountBlob links desc from src into the target. It returns false, nil
	// when src is not mountable from here (different registry) or the
	// registry declined the mount.
	MountBlob(ctx context.Context, desc v1.Descriptor, src Source) (bool, error)
}

// UploadOpener is a Target that can open a blob's upload before it has the
// bytes (a registry's POST), so that a copy opens it while the source is
// still answering for them: one round trip fewer per blob. PushBlob then
// uses it; one no PushBlob uses is cancelled at Close.
type UploadOpener interface {
	// OpenUpload opens an upload for desc, unless one is open already.
	OpenUpload(ctx context.Context, desc v1.Descriptor) error
}

// Renamer is a Target that may store a manifest under a digest of another
// algorithm than the one it was written by: a registry or a storage root
// keeps a manifest pushed by its sha512 digest under its sha256 one
// (distribution), and a tag then resolves to that.
type Renamer interface {
	// StoredAs returns the digest the target stores the manifest desc
	// names by, once written: desc.Digest when it is the same or the
	// target did not say.
	StoredAs(desc v1.Descriptor) v1.Hash
}

// Renames records the manifests a Target stored under another digest than
// the one they were written by; embedded, it gives the Target StoredAs.
type Renames struct {
	mu sync.Mutex
	m  map[v1.Hash]v1.Hash
}

// Remember records that the manifest written as pushed is stored as stored.
func (r *Renames) Remember(pushed, stored v1.Hash) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[v1.Hash]v1.Hash{}
	}
	r.m[pushed] = stored
}

// StoredAs implements Renamer.
func (r *Renames) StoredAs(desc v1.Descriptor) v1.Hash {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h, ok := r.m[desc.Digest]; ok {
		return h
	}
	return desc.Digest
}

// Lister lists the tags of a repository.
type Lister interface {
	// Tags returns every tag, following pagination.
	Tags(ctx context.Context) ([]string, error)
}

// Referrers is a store that lists and records the referrers of a
// manifest (OCI distribution-spec 1.1: manifests whose subject is it).
type Referrers interface {
	// Referrers lists the manifests whose subject is subject.
	Referrers(ctx context.Context, subject v1.Descriptor) ([]v1.Descriptor, error)
	// AddReferrer records referrer, already stored by digest, as a
	// referrer of subject where the store does not find it by itself.
	AddReferrer(ctx context.Context, subject, referrer v1.Descriptor) error
}

// Deleter deletes what a location names.
type Deleter interface {
	// Delete removes what the location names: in a registry, a tag alone
	// when it names a tag, the manifest when it names a digest
	// (registry.Repo.Delete); in a storage root, the manifest the tag
	// names with every tag on it (regroot.Repo.Delete).
	Delete(ctx context.Context) error
}

// BlobStater is a Source that can say whether it holds a blob, and its
// size, without reading it — and without following a descriptor's urls.
type BlobStater interface {
	// StatBlob returns the stored blob's size; the error wraps ErrNotFound
	// when the store does not hold it.
	StatBlob(ctx context.Context, desc v1.Descriptor) (int64, error)
}

// ImageOnly is a Target that holds single-platform images only (a
// docker-archive): the copy engine refuses an index for it before
// transferring anything.
type ImageOnly interface {
	// ImageOnly marks the capability; it does nothing.
	ImageOnly()
}

// Named is implemented by stores that can say where they are, for messages.
type Named interface {
	// Name returns the location as the user would write it.
	Name() string
}

// NameOf names a store for messages: its Name when it is Named, otherwise
// "source".
func NameOf(s any) string {
	if n, ok := s.(Named); ok {
		return n.Name()
	}
	return "source"
}
