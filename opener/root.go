package opener

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"

	"github.com/ferry-dev/ferry/internal/regstorage/replicas"
	"github.com/ferry-dev/ferry/server"
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
type Root struct {
	r *regroot.Root
	// Desc names shared storage opened by OpenGCRoot ("s3 bucket
	// registry"); empty for a local root.
	Desc string
	// ReadOnlyReplicas counts the ferry serve replicas found running
	// read-only on shared storage when OpenGCRoot opened it.
	ReadOnlyReplicas int
}

// OpenRoot opens the existing storage root at dir, locked as holder until
// Close.
func OpenRoot(ctx context.Context, dir, holder string) (*Root, error) {
	r, err := regroot.Open(ctx, dir, regroot.WithLock(holder))
	if err != nil {
		return nil, err
	}
	return &Root{r: r}, nil
}

// OpenRootDriver opens the storage d, described as desc in messages (shared
// storage such as an S3 bucket, which no lock guards).
func OpenRootDriver(ctx context.Context, desc string, d storagedriver.StorageDriver) (*Root, error) {
	r, err := regroot.OpenDriver(ctx, desc, d)
	if err != nil {
		return nil, err
	}
	return &Root{r: r}, nil
}

// ErrReplicasRunning means gc was refused on shared storage; the error is
// a *GCRefusal saying why.
var ErrReplicasRunning = errors.New("refusing to collect garbage")

// GCRefusal is why OpenGCRoot refused shared storage: running replicas
// that accept writes (Writers), or, with none announced, no word that
// every registry on it is stopped. It wraps ErrReplicasRunning; its
// message is the library's, and a command may word it with its flags.
type GCRefusal struct {
	// Desc names the storage.
	Desc string
	// Writers lists the running replicas that accept writes.
	Writers []string
	// StaleAfter is how long after its marker's last write a crashed
	// replica stops counting.
	StaleAfter time.Duration
}

func (e *GCRefusal) Error() string {
	if len(e.Writers) > 0 {
		return fmt.Sprintf("%v on %s: %d replica(s) accept writes: %s", ErrReplicasRunning, e.Desc, len(e.Writers), strings.Join(e.Writers, "; "))
	}
	return fmt.Sprintf("%v on %s: shared storage may be served by registries on other hosts, which no lock here can see", ErrReplicasRunning, e.Desc)
}

// Unwrap returns ErrReplicasRunning.
func (e *GCRefusal) Unwrap() error { return ErrReplicasRunning }

// OpenGCRoot opens the storage gc works on: the local root at dir, locked
// as holder, or the storage the registry configuration file configFile
// names (its filesystem root, locked the same way, or shared storage such
// as an S3 bucket). Shared storage is opened only when no running ferry
// serve replica on it accepts writes, and either stopped says every
// registry on it is stopped or every running replica announces it runs
// read-only; otherwise the error is a *GCRefusal.
func OpenGCRoot(ctx context.Context, dir, configFile, holder string, stopped bool) (*Root, error) {
	if configFile == "" {
		return OpenRoot(ctx, dir, holder)
	}
	local, d, desc, err := server.ConfigStorage(ctx, configFile)
	if err != nil {
		return nil, err
	}
	if local != "" {
		return OpenRoot(ctx, local, holder)
	}
	live, err := replicas.Live(ctx, d)
	if err != nil {
		return nil, err
	}
	if refusal := refuseGC(desc, live, stopped); refusal != nil {
		return nil, refusal
	}
	r, err := OpenRootDriver(ctx, desc, d)
	if err != nil {
		return nil, err
	}
	r.Desc, r.ReadOnlyReplicas = desc, len(live)
	return r, nil
}

// refuseGC decides whether gc may run on shared storage desc, given the
// replicas running on it and whether the caller says all are stopped: nil
// when it may, else why not.
func refuseGC(desc string, live []replicas.Marker, stopped bool) *GCRefusal {
	refusal := &GCRefusal{Desc: desc, StaleAfter: replicas.StaleAfter}
	for _, m := range live {
		if !m.ReadOnly {
			refusal.Writers = append(refusal.Writers, m.String())
		}
	}
	if len(refusal.Writers) > 0 || (len(live) == 0 && !stopped) {
		return refusal
	}
	return nil
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
