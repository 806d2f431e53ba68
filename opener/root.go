package opener

import (
	"context"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"

	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/regroot"
)

// DataDir is where a storage root keeps its data, relative to the root.
const DataDir = regroot.DataDir

// FsckReport is what Fsck found.
type FsckReport = regroot.Report

// GCReport is what Root.GC removed, or would remove.
type GCReport = regroot.GCReport

// ParseRootName splits NAME[:TAG], a repository of a storage root and its
// tag (latest when omitted), and checks both.
func ParseRootName(s string) (repo, tag string, err error) { return regroot.ParseName(s) }

// RootTarget opens the repository repo, tag tag, of the storage root at dir
// for writing: the root is started when dir is missing or empty, and
// locked as holder until Close, which closes it. The caller closes the
// target first.
func (o *Opener) RootTarget(ctx context.Context, dir, holder, repo, tag string) (store.Target, error) {
	root, err := regroot.Open(ctx, dir, regroot.WithCreate(), regroot.WithLock(holder))
	if err != nil {
		return nil, err
	}
	o.closer = append(o.closer, root)
	return root.Repository(ctx, repo, tag)
}

// Fsck checks the storage root at dir, reading only.
func Fsck(ctx context.Context, dir string) (*FsckReport, error) { return regroot.Fsck(ctx, dir) }

// Root is a storage root opened for garbage collection.
type Root struct{ r *regroot.Root }

// OpenRoot opens the existing storage root at dir, locked as holder until
// Close.
func OpenRoot(ctx context.Context, dir, holder string) (*Root, error) {
	r, err := regroot.Open(ctx, dir, regroot.WithLock(holder))
	if err != nil {
		return nil, err
	}
	return &Root{r}, nil
}

// OpenRootDriver opens the storage d, described as desc in messages (shared
// storage such as an S3 bucket, which no lock guards).
func OpenRootDriver(ctx context.Context, desc string, d storagedriver.StorageDriver) (*Root, error) {
	r, err := regroot.OpenDriver(ctx, desc, d)
	if err != nil {
		return nil, err
	}
	return &Root{r}, nil
}

// GC runs distribution's mark and sweep on the root: with dryRun it
// removes nothing and reports what it would; with removeUntagged,
// manifests no tag points at go too (those a kept index lists or that
// refer to a kept manifest stay). Unfinished uploads that began more than
// uploadAge ago are removed as well.
func (r *Root) GC(ctx context.Context, dryRun, removeUntagged bool, uploadAge time.Duration) (*GCReport, error) {
	return r.r.GC(ctx, regroot.DryRun(dryRun), regroot.RemoveUntagged(removeUntagged), regroot.UploadAge(uploadAge))
}

// DefaultUploadAge is how old an unfinished upload must be for GC to
// remove it, unless told otherwise.
const DefaultUploadAge = regroot.DefaultUploadAge

// Close releases the root and its lock.
func (r *Root) Close() error { return r.r.Close() }
