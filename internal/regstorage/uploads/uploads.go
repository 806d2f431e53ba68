// Package uploads finds and removes the unfinished blob uploads of a
// registry storage root: what a killed push, a client that gave up or a
// full disk leaves under a repository's _uploads directory. distribution
// removes them only from a running registry (its upload purger) and its
// garbage collector never looks at them, so without this they fill the
// disk for good.
//
// An upload is repositories/<name>/_uploads/<id>/ holding data (the bytes
// so far), startedat (RFC 3339) and hashstates/. Its age is counted from
// startedat, which the registry that began it wrote, so every replica on
// shared storage sees the same age; an upload without a readable
// startedat is as old as its newest file.
package uploads

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"

	"github.com/ferry-dev/ferry/internal/regstorage"
)

// Upload is one unfinished upload.
type Upload struct {
	// Repository is the repository it was begun in.
	Repository string `json:"repository"`
	// ID is its upload ID (the UUID of its URL).
	ID string `json:"id"`
	// Size is the bytes its data holds.
	Size int64 `json:"size"`
	// StartedAt is when it began.
	StartedAt time.Time `json:"startedAt"`
	// Path is its directory in the driver's namespace.
	Path string `json:"-"`
}

// reposDir is where repositories live in a driver's namespace.
const reposDir = "/" + regstorage.DataDir + "/repositories"

// List returns the unfinished uploads under d, sorted by repository and
// ID. It reads only repositories' directories and their _uploads, not
// their links.
func List(ctx context.Context, d storagedriver.StorageDriver) ([]Upload, error) {
	out := []Upload{}
	if err := walkRepos(ctx, d, reposDir, &out); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Repository != out[j].Repository {
			return out[i].Repository < out[j].Repository
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// walkRepos descends the repository tree from dir, reading each _uploads
// directory it meets and skipping _manifests and _layers.
func walkRepos(ctx context.Context, d storagedriver.StorageDriver, dir string, out *[]Upload) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	children, err := d.List(ctx, dir)
	if errors.As(err, new(storagedriver.PathNotFoundError)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("uploads: list %s: %w", dir, err)
	}
	for _, child := range children {
		switch path.Base(child) {
		case "_manifests", "_layers":
		case "_uploads":
			if err := readUploads(ctx, d, child, out); err != nil {
				return err
			}
		default:
			if err := walkRepos(ctx, d, child, out); err != nil {
				return err
			}
		}
	}
	return nil
}

// readUploads reads each upload in an _uploads directory.
func readUploads(ctx context.Context, d storagedriver.StorageDriver, dir string, out *[]Upload) error {
	ids, err := d.List(ctx, dir)
	if errors.As(err, new(storagedriver.PathNotFoundError)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("uploads: list %s: %w", dir, err)
	}
	repo := strings.TrimPrefix(path.Dir(dir), reposDir+"/")
	for _, p := range ids {
		u := Upload{Repository: repo, ID: path.Base(p), Path: p}
		if fi, err := d.Stat(ctx, path.Join(p, "data")); err == nil {
			u.Size, u.StartedAt = fi.Size(), fi.ModTime()
		}
		if t, ok := startedAt(ctx, d, p); ok {
			u.StartedAt = t
		} else if fi, err := d.Stat(ctx, p); err == nil && fi.ModTime().After(u.StartedAt) {
			// The directory is stat'ed only when needed: on S3 that
			// is a listing.
			u.StartedAt = fi.ModTime()
		}
		*out = append(*out, u)
	}
	return nil
}

// startedAt reads the upload directory p's startedat file.
func startedAt(ctx context.Context, d storagedriver.StorageDriver, p string) (time.Time, bool) {
	b, err := d.GetContent(ctx, path.Join(p, "startedat"))
	if err != nil {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(string(b)))
	return t, err == nil
}

// Remove deletes the uploads under d that began before olderThan (all of
// them with dryRun unset) and returns them; with dryRun it deletes
// nothing and returns what it would.
func Remove(ctx context.Context, d storagedriver.StorageDriver, olderThan time.Time, dryRun bool) ([]Upload, error) {
	all, err := List(ctx, d)
	if err != nil {
		return nil, err
	}
	removed := []Upload{}
	for _, u := range all {
		if !u.StartedAt.Before(olderThan) {
			continue
		}
		// A server's Close ends the purge here, and waits for it.
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		if !dryRun {
			if err := d.Delete(ctx, u.Path); err != nil && !errors.As(err, new(storagedriver.PathNotFoundError)) {
				return removed, fmt.Errorf("uploads: remove %s upload %s: %w", u.Repository, u.ID, err)
			}
		}
		removed = append(removed, u)
	}
	return removed, nil
}

// Dir returns the directory of the upload id of repository repo in a
// driver's namespace, or an error when they name no upload.
func Dir(repo, id string) (string, error) {
	if repo == "" || id == "" || strings.ContainsAny(id, "/\\") || id == "." || id == ".." || strings.Contains(repo, "..") {
		return "", fmt.Errorf("uploads: no upload %q in %q", id, repo)
	}
	return path.Join(reposDir, repo, "_uploads", id), nil
}

// RemoveDir deletes the upload directory dir (from Dir), if it is there.
func RemoveDir(ctx context.Context, d storagedriver.StorageDriver, dir string) error {
	err := d.Delete(ctx, dir)
	if err != nil && !errors.As(err, new(storagedriver.PathNotFoundError)) {
		return fmt.Errorf("uploads: remove %s: %w", dir, err)
	}
	return nil
}
