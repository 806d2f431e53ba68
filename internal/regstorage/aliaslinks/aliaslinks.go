// Package aliaslinks reads and writes the links by which a distribution
// registry names content by a digest of another algorithm than its
// canonical one (sha256).
//
// distribution stores every blob once, under its sha256 digest. When a
// client uploads one with a sha512 digest (`PUT ...?digest=sha512:...`),
// distribution verifies it, stores it under its sha256 digest and writes
// two links in the repository: the canonical one and an alias whose
// content is the canonical digest:
//
//	repositories/<name>/_layers/sha256/<hex256>/link   -> sha256:<hex256>
//	repositories/<name>/_layers/sha512/<hex512>/link   -> sha256:<hex256>
//
// It writes no alias for a mount or a manifest, which ferry serve adds
// itself (server/digests.go), in the same form under _layers and
// _manifests/revisions. A healthy alias names an existing canonical digest
// whose content also hashes to the alias; storage fsck checks both.
package aliaslinks

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"

	"github.com/ferry-dev/ferry/internal/regstorage"
)

// Kind is one of the two link directories of a repository.
type Kind string

const (
	// Layers holds the repository's blob links.
	Layers Kind = "_layers"
	// Revisions holds the repository's manifest revision links.
	Revisions Kind = "_manifests/revisions"
)

// Dir is the storage-driver path of repository name's link directory of
// kind k.
func Dir(name string, k Kind) string {
	return path.Join("/", regstorage.DataDir, "repositories", name, string(k))
}

// Path is the storage-driver path of the link naming d in repository
// name's directory of kind k.
func Path(name string, k Kind, d digest.Digest) string {
	return path.Join(Dir(name, k), d.Algorithm().String(), d.Encoded(), "link")
}

// Write links alias to canonical in repository name, as distribution
// writes its own alias links.
func Write(ctx context.Context, d storagedriver.StorageDriver, name string, k Kind, alias, canonical digest.Digest) error {
	if err := d.PutContent(ctx, Path(name, k, alias), []byte(canonical)); err != nil {
		return fmt.Errorf("link %s to %s in %s: %w", alias, canonical, name, err)
	}
	return nil
}

// Read returns the digest the link naming d in repository name points at,
// wrapping storagedriver.PathNotFoundError when there is none.
func Read(ctx context.Context, d storagedriver.StorageDriver, name string, k Kind, dg digest.Digest) (digest.Digest, error) {
	b, err := d.GetContent(ctx, Path(name, k, dg))
	if err != nil {
		return "", err
	}
	target, err := digest.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return "", fmt.Errorf("link %s in %s: %w", dg, name, err)
	}
	return target, nil
}

// Find returns the aliases in repository name's directory of kind k that
// point at canonical.
func Find(ctx context.Context, d storagedriver.StorageDriver, name string, k Kind, canonical digest.Digest) ([]digest.Digest, error) {
	all, err := All(ctx, d, name, k)
	return all[canonical], err
}

// All returns the aliases in repository name's directory of kind k, by
// the digest they point at. It reads every link of every non-canonical
// algorithm in the directory (few repositories have many); links that
// cannot be read as a digest are left out.
func All(ctx context.Context, d storagedriver.StorageDriver, name string, k Kind) (map[digest.Digest][]digest.Digest, error) {
	algs, err := d.List(ctx, Dir(name, k))
	if errors.As(err, new(storagedriver.PathNotFoundError)) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	found := map[digest.Digest][]digest.Digest{}
	for _, ap := range algs {
		alg := digest.Algorithm(path.Base(ap))
		if alg == digest.Canonical {
			continue
		}
		entries, err := d.List(ctx, ap)
		if errors.As(err, new(storagedriver.PathNotFoundError)) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			alias := digest.NewDigestFromEncoded(alg, path.Base(e))
			b, err := d.GetContent(ctx, Path(name, k, alias))
			if errors.As(err, new(storagedriver.PathNotFoundError)) {
				continue
			}
			if err != nil {
				return nil, err
			}
			target, err := digest.Parse(strings.TrimSpace(string(b)))
			if err != nil || target == alias {
				continue
			}
			found[target] = append(found[target], alias)
		}
	}
	return found, nil
}
