package regroot

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
)

type gcOptions struct {
	dryRun         bool
	removeUntagged bool
	uploadAge      *time.Duration // uploads.go
}

// GCOption configures GC.
type GCOption func(*gcOptions)

// DryRun makes GC report what it would remove and remove nothing. The
// default removes.
func DryRun(on bool) GCOption { return func(o *gcOptions) { o.dryRun = on } }

// RemoveUntagged makes GC also remove manifests no tag points at (and
// then what only they referenced), as distribution's
// --delete-untagged does, except the referrers of what is kept: an
// untagged manifest whose subject is kept stays. The default keeps them
// all but the referrers of subjects not kept.
func RemoveUntagged(on bool) GCOption { return func(o *gcOptions) { o.removeUntagged = on } }

// RemovedBlob is a blob GC removed, or would remove.
type RemovedBlob struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// RemovedLink is a repository's link GC removed, or would remove: a layer
// link, or a manifest revision (with the tag-history entries pointing at
// it) when untagged manifests are removed.
type RemovedLink struct {
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
	// Kind is "layer" or "manifest".
	Kind string `json:"kind"`
}

// GCReport says what GC removed, or would remove with DryRun.
type GCReport struct {
	// DryRun says nothing was removed.
	DryRun bool `json:"dryRun"`
	// Blobs are the blobs no manifest references, sorted by digest.
	Blobs []RemovedBlob `json:"blobs"`
	// Links are the repository links to them (and untagged manifests).
	Links []RemovedLink `json:"links"`
	// Uploads are the unfinished uploads older than the upload age
	// (uploads.go).
	Uploads []Upload `json:"uploads"`
	// BytesFreed is the sum of the blobs' and the uploads' sizes.
	BytesFreed int64 `json:"bytesFreed"`
}

// GC collects the root's garbage with distribution's mark and sweep,
// as storage.MarkAndSweep does it, plus referrers: it marks every manifest
// of every repository (only the tagged ones with RemoveUntagged) and what
// they reference, then removes the blobs and layer links nothing marked
// (and the revisions of the unmarked manifests). It
// must not run while a registry serves the root; callers hold the root's
// lock (internal/regstorage/rootlock).
//
// Referrers follow their subject. An untagged manifest whose subject is
// marked — a signature, SBOM or attestation of a kept image, which the
// registry's referrers API lists — is kept with what it references, and
// so, transitively, are the referrers of what that keeps (see
// markReferrers); storage.MarkAndSweep would remove them with
// RemoveUntagged. An untagged manifest whose subject is not kept (deleted
// from the registry, say with ferry serve --delete, which leaves its
// referrers listed until then) is removed, with or without RemoveUntagged,
// as are the blobs only it referenced. A tagged referrer is kept.
//
// Content linked under a digest of another algorithm (sha512 alias links,
// internal/regstorage/aliaslinks) is kept by either digest, and its alias
// links are removed with the canonical ones.
//
// GC prints no progress of its own; it records every removal as it
// reaches the storage driver, with the blob's size read just before. With DryRun the driver
// swallows the removals, so the report of a dry run is exactly what a
// real run would remove.
func (r *Root) GC(ctx context.Context, opts ...GCOption) (*GCReport, error) {
	var o gcOptions
	for _, opt := range opts {
		opt(&o)
	}
	rec := &recordingDriver{StorageDriver: r.driver, dryRun: o.dryRun}
	ns, err := storage.NewRegistry(ctx, rec, storage.EnableDelete)
	if err != nil {
		return nil, fmt.Errorf("gc %s: %w", r.dir, err)
	}
	err = markAndSweep(ctx, rec, ns, o.removeUntagged)
	rep := rec.report()
	if err != nil {
		return rep, fmt.Errorf("gc %s: %w", r.dir, err)
	}
	rep.Uploads, err = r.removeUploads(ctx, o)
	for _, u := range rep.Uploads {
		rep.BytesFreed += u.Size
	}
	return rep, err
}

// recordingDriver passes everything through to the storage driver but
// records deletes, and with dryRun does not perform them.
type recordingDriver struct {
	storagedriver.StorageDriver
	dryRun bool

	mu    sync.Mutex
	blobs []RemovedBlob
	links []RemovedLink
}

// Delete implements storagedriver.StorageDriver.
func (d *recordingDriver) Delete(ctx context.Context, p string) error {
	if err := d.record(ctx, p); err != nil {
		return err
	}
	if d.dryRun {
		return nil
	}
	return d.StorageDriver.Delete(ctx, p)
}

// record classifies a path the sweep deletes (see distribution's
// registry/storage/paths.go):
//
//	/docker/registry/v2/blobs/<alg>/<xx>/<hex>
//	/docker/registry/v2/repositories/<name>/_layers/<alg>/<hex>/link
//	/docker/registry/v2/repositories/<name>/_manifests/revisions/<alg>/<hex>
//	/docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link
func (d *recordingDriver) record(ctx context.Context, p string) error {
	rel := strings.TrimPrefix(p, "/"+DataDir+"/")
	parts := strings.Split(rel, "/")
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case len(parts) == 4 && parts[0] == "blobs":
		dg := digest.NewDigestFromEncoded(digest.Algorithm(parts[1]), parts[3])
		fi, err := d.StorageDriver.Stat(ctx, path.Join(p, "data"))
		if err != nil {
			return fmt.Errorf("size of blob %s: %w", dg, err)
		}
		d.blobs = append(d.blobs, RemovedBlob{Digest: string(dg), Size: fi.Size()})
	case parts[0] == "repositories":
		if kind, name, dg, ok := linkOf(parts[1:]); ok {
			d.links = append(d.links, RemovedLink{Repository: name, Digest: string(dg), Kind: kind})
		}
	}
	return nil
}

// linkOf parses <name...>/_layers/<alg>/<hex>/link and
// <name...>/_manifests/revisions/<alg>/<hex>; tag-history entries are not
// reported on their own.
func linkOf(parts []string) (kind, name string, d digest.Digest, ok bool) {
	for i, s := range parts {
		switch {
		case s == "_layers" && len(parts) == i+4:
			return "layer", strings.Join(parts[:i], "/"), digest.NewDigestFromEncoded(digest.Algorithm(parts[i+1]), parts[i+2]), true
		case s == "_manifests" && len(parts) == i+4 && parts[i+1] == "revisions":
			return "manifest", strings.Join(parts[:i], "/"), digest.NewDigestFromEncoded(digest.Algorithm(parts[i+2]), parts[i+3]), true
		}
	}
	return "", "", "", false
}

func (d *recordingDriver) report() *GCReport {
	d.mu.Lock()
	defer d.mu.Unlock()
	rep := &GCReport{DryRun: d.dryRun, Blobs: append([]RemovedBlob{}, d.blobs...), Links: append([]RemovedLink{}, d.links...), Uploads: []Upload{}}
	sort.Slice(rep.Blobs, func(i, j int) bool { return rep.Blobs[i].Digest < rep.Blobs[j].Digest })
	sort.Slice(rep.Links, func(i, j int) bool {
		a, b := rep.Links[i], rep.Links[j]
		if a.Repository != b.Repository {
			return a.Repository < b.Repository
		}
		return a.Digest < b.Digest
	})
	for _, b := range rep.Blobs {
		rep.BytesFreed += b.Size
	}
	return rep
}
