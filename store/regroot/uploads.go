package regroot

// This file is what gc and fsck do about unfinished uploads
// (internal/regstorage/uploads): fsck lists them with their sizes, gc
// removes those older than an age.

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/ferry-dev/ferry/internal/regstorage/fsdriver"
	"github.com/ferry-dev/ferry/internal/regstorage/uploads"
)

// DefaultUploadAge is how old an unfinished upload must be for GC to
// remove it unless UploadAge says otherwise. GC runs only when no
// registry accepts pushes to the root (it would delete the blobs of
// uploads in flight), so every upload it finds is abandoned; the hour
// spares a registry that does not hold the root's lock and was stopped
// just before.
const DefaultUploadAge = time.Hour

// Upload is an unfinished upload: its repository, upload ID, the bytes it
// holds and when it began.
type Upload = uploads.Upload

// UploadAge makes GC remove the unfinished uploads that began more than
// age ago (DefaultUploadAge unless set; 0 removes them all).
func UploadAge(age time.Duration) GCOption {
	return func(o *gcOptions) { o.uploadAge = &age }
}

// removeUploads removes (with dryRun, lists) the uploads older than the
// options' age.
func (r *Root) removeUploads(ctx context.Context, o gcOptions) ([]Upload, error) {
	age := DefaultUploadAge
	if o.uploadAge != nil {
		age = *o.uploadAge
	}
	removed, err := uploads.Remove(ctx, r.driver, time.Now().Add(-age), o.dryRun)
	if err != nil {
		return removed, fmt.Errorf("gc %s: %w", r.dir, err)
	}
	return removed, nil
}

// listUploads lists the unfinished uploads of the root at dir.
func listUploads(ctx context.Context, dir string) ([]Upload, error) {
	d, err := fsdriver.New(filepath.Clean(dir))
	if err != nil {
		return nil, err
	}
	return uploads.List(ctx, d)
}
