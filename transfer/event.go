package transfer

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// EventKind says what happened.
type EventKind int

const (
	// BlobStart: a blob transfer began (Size is its size).
	BlobStart EventKind = iota
	// BlobProgress: Done of Size bytes of a blob have passed.
	BlobProgress
	// BlobCopied: the blob was transferred and verified.
	BlobCopied
	// BlobSkipped: the destination already held the blob.
	BlobSkipped
	// BlobMounted: the blob was mounted from the source repository.
	BlobMounted
	// BlobForeignKept: a foreign blob was left at its urls (policy keep).
	BlobForeignKept
	// BlobRetry: a blob transfer failed and is tried again (Err says why).
	BlobRetry
	// ManifestWritten: a manifest or index was written (Digest).
	ManifestWritten
	// DigestRewritten: a manifest or index got a new digest (Old -> Digest).
	DigestRewritten
)

// Event reports progress of a copy. Events for one blob arrive in order;
// events for different blobs interleave.
type Event struct {
	Kind      EventKind
	Digest    v1.Hash
	Old       v1.Hash // DigestRewritten only
	MediaType string
	Size      int64
	Done      int64
	Source    string // where the bytes come from: a registry, or a URL
	Err       error
}
