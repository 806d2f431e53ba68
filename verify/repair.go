package verify

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/store"
)

// Damaged returns the digests of the blobs r found held but wrong: of
// another size, not hashing to their digest, or unreadable. A copy would
// skip them as present; a repair must write them again (ForRepair).
// Missing blobs are not listed: a copy writes them anyway.
func (r *Report) Damaged() map[v1.Hash]bool {
	out := map[v1.Hash]bool{}
	for _, f := range r.Findings {
		switch f.Status {
		case SizeMismatch, DigestMismatch, Unreadable:
			out[f.Descriptor.Digest] = true
		}
	}
	return out
}

// ForRepair wraps dst for a repair copy: HasBlob reports false for the
// damaged digests, so that the copy writes them again by digest rather
// than skipping them as already there, and they are never mounted. The
// other blobs are skipped or mounted as in any copy. dst's ImageOnly and
// Mounter capabilities are kept.
//
// A store that keeps the bytes it holds for a digest is not repaired this
// way: distribution, ferry serve included, takes an upload of a digest it
// has as done; Verify afterwards still reports such a blob.
func ForRepair(dst store.Target, damaged map[v1.Hash]bool) store.Target {
	t := repairTarget{Target: dst, damaged: damaged}
	if m, ok := dst.(store.Mounter); ok {
		return repairMounter{t, m}
	}
	if _, ok := dst.(store.ImageOnly); ok {
		return repairImageOnly{t}
	}
	return t
}

type repairTarget struct {
	store.Target
	damaged map[v1.Hash]bool
}

func (t repairTarget) HasBlob(ctx context.Context, desc v1.Descriptor) (bool, error) {
	if t.damaged[desc.Digest] {
		return false, nil
	}
	return t.Target.HasBlob(ctx, desc)
}

type repairMounter struct {
	repairTarget
	m store.Mounter
}

func (t repairMounter) MountBlob(ctx context.Context, desc v1.Descriptor, src store.Source) (bool, error) {
	if t.damaged[desc.Digest] {
		return false, nil
	}
	return t.m.MountBlob(ctx, desc, src)
}

type repairImageOnly struct{ repairTarget }

func (repairImageOnly) ImageOnly() {}
