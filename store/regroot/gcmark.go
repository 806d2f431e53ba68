package regroot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/internal/regstorage/aliaslinks"
	"github.com/ferry-dev/ferry/internal/regstorage/storedmanifest"
)

// collector holds the marks of one GC. Its mark phase is
// storage.MarkAndSweep's (distribution v3.1.2,
// registry/storage/garbagecollect.go), step for step, with one phase
// added (markReferrers); its sweep is MarkAndSweep's too, through
// distribution's storage.Vacuum.
type collector struct {
	ns             distribution.Namespace
	removeUntagged bool

	// marked holds every digest marked, in any repository: as in
	// distribution, a blob or manifest marked in one repository is kept
	// in all of them.
	marked map[digest.Digest]bool
	// untagged are the untagged manifests (with removeUntagged), in the
	// order the walk found them; those still unmarked after the mark
	// phase are removed.
	untagged []untaggedManifest
	// layers are, per repository, its layer links to digests not marked
	// when the walk left the repository: what distribution removes.
	layers map[string][]digest.Digest
	// keepLinks are, per repository, what its kept referrers reference
	// (recursively): their layer links stay whatever layers says.
	keepLinks map[string]map[digest.Digest]bool
	// subjects caches the subject each untagged manifest names ("" for
	// none).
	subjects map[digest.Digest]digest.Digest
	// driver is the driver ns is built on, through which alias links
	// are read.
	driver storagedriver.StorageDriver
	// canonicalOf maps, per repository, each alias (a digest of another
	// algorithm linked to a canonical one: internal/regstorage/aliaslinks)
	// to the canonical digest its content is stored by.
	canonicalOf map[string]map[digest.Digest]digest.Digest
	// aliases are, per repository, the aliases of each canonical digest
	// among its layers and its revisions.
	aliases map[string]map[aliaslinks.Kind]map[digest.Digest][]digest.Digest
}

// untaggedManifest is a manifest revision no tag points at.
type untaggedManifest struct {
	repo   string
	digest digest.Digest
	// tags are all the repository's tags (one slice shared by its
	// untagged manifests): their histories may name the manifest, and go
	// with it.
	tags []string
	ms   distribution.ManifestService
	// referrer says its subject is marked, and so what it references.
	referrer bool
}

// markAndSweep collects the garbage of the registry ns on driver d (the
// driver ns is built on). Without removeUntagged it does what
// storage.MarkAndSweep does, except for referrers: an untagged manifest
// with a subject is kept only while its subject is (see markReferrers),
// so the referrers of a deleted manifest go with it at the next gc. With
// removeUntagged, it removes the untagged manifests but keeps the
// referrers of what is kept. Either way a referrer is kept with what it
// references and the layer links to that in its repository.
//
// Content linked by an alias (a sha512 digest linked to the sha256 one the
// blob is stored by) is marked by both digests, and an alias link goes
// with the link or revision of its canonical digest.
func markAndSweep(ctx context.Context, d storagedriver.StorageDriver, ns distribution.Namespace, removeUntagged bool) error {
	repos, ok := ns.(distribution.RepositoryEnumerator)
	if !ok {
		return errors.New("the storage namespace cannot list repositories")
	}
	c := &collector{
		ns:             ns,
		removeUntagged: removeUntagged,
		marked:         map[digest.Digest]bool{},
		layers:         map[string][]digest.Digest{},
		keepLinks:      map[string]map[digest.Digest]bool{},
		subjects:       map[digest.Digest]digest.Digest{},
		driver:         d,
		canonicalOf:    map[string]map[digest.Digest]digest.Digest{},
		aliases:        map[string]map[aliaslinks.Kind]map[digest.Digest][]digest.Digest{},
	}
	// The repositories are marked in the order the walk finds them, as
	// distribution does (a layer link's fate depends on what the
	// repositories before it marked).
	var names []string
	var mu sync.Mutex
	err := repos.Enumerate(ctx, func(name string) error {
		mu.Lock()
		defer mu.Unlock()
		names = append(names, name)
		return nil
	})
	// A root without repositories (new, or holding only blobs) has
	// nothing to mark.
	if err != nil && !errors.As(err, new(storagedriver.PathNotFoundError)) {
		return fmt.Errorf("mark: list repositories: %w", err)
	}
	for _, name := range names {
		if err := c.markRepository(ctx, name); err != nil {
			return fmt.Errorf("mark: %w", err)
		}
	}
	if err := c.markReferrers(ctx); err != nil {
		return fmt.Errorf("mark: %w", err)
	}
	return c.sweep(ctx, storage.NewVacuum(ctx, d))
}

// markRepository marks the manifests of one repository (only the tagged
// ones with removeUntagged, noting the others) and what they reference,
// then notes its layer links to what is still unmarked.
func (c *collector) markRepository(ctx context.Context, name string) error {
	named, err := reference.WithName(name)
	if err != nil {
		return fmt.Errorf("repository name %q: %w", name, err)
	}
	repo, err := c.ns.Repository(ctx, named)
	if err != nil {
		return fmt.Errorf("repository %s: %w", name, err)
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		return fmt.Errorf("manifests of %s: %w", name, err)
	}
	if err := c.readAliases(ctx, name); err != nil {
		return err
	}
	revisions, ok := ms.(distribution.ManifestEnumerator)
	if !ok {
		return fmt.Errorf("manifests of %s cannot be listed", name)
	}
	var (
		found []digest.Digest
		mu    sync.Mutex
	)
	seen := map[digest.Digest]bool{}
	err = revisions.Enumerate(ctx, func(d digest.Digest) error {
		mu.Lock()
		defer mu.Unlock()
		// An alias revision enumerates as its canonical digest.
		if !seen[d] {
			seen[d] = true
			found = append(found, d)
		}
		return nil
	})
	// A repository without revisions (only uploads, or its _manifests
	// removed by hand) has nothing to mark, as in distribution.
	if err != nil && !errors.As(err, new(storagedriver.PathNotFoundError)) {
		return fmt.Errorf("manifests of %s: %w", name, err)
	}
	var tags *repoTags
	if len(found) > 0 {
		if tags, err = readTags(ctx, name, repo, c.canonicalOf[name]); err != nil {
			return err
		}
	}
	for _, d := range found {
		if err := c.markRevision(ctx, name, ms, tags, d); err != nil {
			return err
		}
	}
	layers, ok := repo.Blobs(ctx).(distribution.ManifestEnumerator)
	if !ok {
		return fmt.Errorf("layers of %s cannot be listed", name)
	}
	var unmarked []digest.Digest
	clear(seen)
	err = layers.Enumerate(ctx, func(d digest.Digest) error {
		mu.Lock()
		defer mu.Unlock()
		if !c.marked[d] && !seen[d] {
			seen[d] = true
			unmarked = append(unmarked, d)
		}
		return nil
	})
	if len(unmarked) > 0 {
		c.layers[name] = unmarked
	}
	if err != nil {
		return fmt.Errorf("layers of %s: %w", name, err)
	}
	return nil
}

// repoTags are a repository's tags: all of them, and those pointing at
// each manifest.
type repoTags struct {
	all []string
	of  map[digest.Digest][]string
}

// readTags reads the tags of repository name: the list of its tags, then
// each tag's current link, once, where the tag service's Lookup would
// read them all again for every manifest. A tag pointing at an alias
// counts for the canonical digest canonicalOf maps it to.
func readTags(ctx context.Context, name string, repo distribution.Repository, canonicalOf map[digest.Digest]digest.Digest) (*repoTags, error) {
	ts := repo.Tags(ctx)
	all, err := ts.All(ctx)
	if err != nil && !errors.As(err, new(distribution.ErrRepositoryUnknown)) {
		return nil, fmt.Errorf("tags of %s: %w", name, err)
	}
	t := &repoTags{all: all, of: map[digest.Digest][]string{}}
	for _, tag := range all {
		desc, err := ts.Get(ctx, tag)
		if errors.As(err, new(distribution.ErrTagUnknown)) {
			// Listed, but without a current link (as Lookup, skip it).
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("tags of %s: tag %s: %w", name, tag, err)
		}
		d := desc.Digest
		if cd, ok := canonicalOf[d]; ok {
			d = cd
		}
		t.of[d] = append(t.of[d], tag)
	}
	return t, nil
}

// markRevision marks manifest d of repository name and what it
// references, unless no tag points at it and it is to be collected
// unless something keeps it (removeUntagged is on, or it is a referrer):
// then it is noted as untagged.
func (c *collector) markRevision(ctx context.Context, name string, ms distribution.ManifestService, tags *repoTags, d digest.Digest) error {
	untagged := tags != nil && len(tags.of[d]) == 0
	if untagged && !c.removeUntagged {
		s, err := c.subject(ctx, d)
		if err != nil {
			return err
		}
		untagged = s != ""
	}
	if untagged {
		// Every tag's history may name it. distribution skips a
		// manifest of a repository without tags altogether, which
		// leaves its revision link to a removed blob; here it is
		// removed as any untagged manifest.
		c.untagged = append(c.untagged, untaggedManifest{repo: name, digest: d, tags: tags.all, ms: ms})
		return nil
	}
	c.marked[d] = true
	return markReferences(ctx, ms, d, func(ref digest.Digest) bool {
		return c.mark(name, ref)
	})
}

// mark marks d, referenced in repository name, and the canonical digest
// it is an alias of there, if it is one. It reports whether d was marked
// already.
func (c *collector) mark(name string, d digest.Digest) (seen bool) {
	seen = c.marked[d]
	c.marked[d] = true
	if cd, ok := c.canonicalOf[name][d]; ok {
		c.marked[cd] = true
	}
	return seen
}

// isMarked reports whether d, or the canonical digest it is an alias of
// in repository name, is marked.
func (c *collector) isMarked(name string, d digest.Digest) bool {
	if c.marked[d] {
		return true
	}
	cd, ok := c.canonicalOf[name][d]
	return ok && c.marked[cd]
}

// readAliases reads repository name's alias links.
func (c *collector) readAliases(ctx context.Context, name string) error {
	byKind := map[aliaslinks.Kind]map[digest.Digest][]digest.Digest{}
	canonicalOf := map[digest.Digest]digest.Digest{}
	for _, k := range []aliaslinks.Kind{aliaslinks.Layers, aliaslinks.Revisions} {
		all, err := aliaslinks.All(ctx, c.driver, name, k)
		if err != nil {
			return fmt.Errorf("alias links of %s: %w", name, err)
		}
		byKind[k] = all
		for cd, as := range all {
			for _, a := range as {
				canonicalOf[a] = cd
			}
		}
	}
	c.aliases[name] = byKind
	c.canonicalOf[name] = canonicalOf
	return nil
}

// markReferences passes what manifest d references to ingest, and
// recursively what the manifests among them reference, unless ingest
// says the digest was visited already.
func markReferences(ctx context.Context, ms distribution.ManifestService, d digest.Digest, ingest func(digest.Digest) (seen bool)) error {
	m, err := ms.Get(ctx, d)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", d, err)
	}
	for _, ref := range m.References() {
		if ingest(ref.Digest) {
			continue
		}
		if ok, _ := ms.Exists(ctx, ref.Digest); ok {
			if err := markReferences(ctx, ms, ref.Digest, ingest); err != nil {
				return err
			}
		}
	}
	return nil
}

// markReferrers marks the untagged manifests whose subject is marked —
// the referrers the registry's referrers API lists for a kept manifest:
// signatures, SBOMs, attestations — and what they reference, until no
// more are: a referrer of a kept referrer is kept, and so is a referrer of
// a manifest a kept index lists.
//
// A subject is taken from the manifest as stored, whatever its media type
// (keeping more than the API lists, never less), and is kept when marked
// in any repository, as distribution keeps any manifest whose digest is
// marked somewhere. A referrer's layer links in its repository stay, even
// those distribution would have removed because a repository walked after
// it marked the blob.
func (c *collector) markReferrers(ctx context.Context) error {
	for more := true; more; {
		more = false
		for i := range c.untagged {
			u := &c.untagged[i]
			if u.referrer {
				continue
			}
			s, err := c.subject(ctx, u.digest)
			if err != nil {
				return err
			}
			if s == "" || !c.isMarked(u.repo, s) {
				continue
			}
			u.referrer, more = true, true
			links := c.keepLinks[u.repo]
			if links == nil {
				links = map[digest.Digest]bool{}
				c.keepLinks[u.repo] = links
			}
			c.marked[u.digest] = true
			err = markReferences(ctx, u.ms, u.digest, func(ref digest.Digest) bool {
				c.mark(u.repo, ref)
				if links[ref] {
					return true
				}
				links[ref] = true
				if cd, ok := c.canonicalOf[u.repo][ref]; ok {
					links[cd] = true
				}
				return false
			})
			if err != nil {
				return fmt.Errorf("referrer %s@%s: %w", u.repo, u.digest, err)
			}
		}
	}
	return nil
}

// subject returns the subject manifest d names, "" when it names none,
// its bytes are gone, larger than a registry accepts or do not parse
// (then nothing can list it as a referrer). The bytes are read as stored: distribution's manifest
// service refuses some manifests (schema1) GC must still get past.
func (c *collector) subject(ctx context.Context, d digest.Digest) (digest.Digest, error) {
	if s, ok := c.subjects[d]; ok {
		return s, nil
	}
	raw, err := storedmanifest.Read(ctx, c.ns, d)
	if err != nil && !errors.Is(err, distribution.ErrBlobUnknown) && !errors.Is(err, blob.ErrTooLarge) {
		return "", fmt.Errorf("read manifest %s: %w", d, err)
	}
	var m struct {
		Subject *ocispec.Descriptor `json:"subject"`
	}
	var s digest.Digest
	if err == nil && json.Unmarshal(raw, &m) == nil && m.Subject != nil {
		s = m.Subject.Digest
	}
	c.subjects[d] = s
	return s, nil
}

// sweep removes, as distribution does and in its order, the untagged
// manifests left unmarked (with their tag-history entries), the blobs
// nothing marked, and the layer links to blobs unmarked when their
// repository was walked that no kept referrer there references.
func (c *collector) sweep(ctx context.Context, v storage.Vacuum) error {
	for _, u := range c.untagged {
		if c.marked[u.digest] {
			continue
		}
		for _, d := range append([]digest.Digest{u.digest}, c.aliases[u.repo][aliaslinks.Revisions][u.digest]...) {
			if err := v.RemoveManifest(u.repo, d, u.tags); err != nil {
				return fmt.Errorf("sweep: remove manifest %s@%s: %w", u.repo, d, err)
			}
		}
	}
	var (
		garbage []digest.Digest
		mu      sync.Mutex
	)
	err := c.ns.Blobs().Enumerate(ctx, func(d digest.Digest) error {
		mu.Lock()
		defer mu.Unlock()
		if !c.marked[d] {
			garbage = append(garbage, d)
		}
		return nil
	})
	// A root without blobs has none to remove.
	if err != nil && !errors.As(err, new(storagedriver.PathNotFoundError)) {
		return fmt.Errorf("sweep: list blobs: %w", err)
	}
	for _, d := range garbage {
		if err := v.RemoveBlob(string(d)); err != nil {
			return fmt.Errorf("sweep: remove blob %s: %w", d, err)
		}
	}
	for repo, ds := range c.layers {
		for _, d := range ds {
			if c.keepLinks[repo][d] {
				continue
			}
			for _, l := range append([]digest.Digest{d}, c.aliases[repo][aliaslinks.Layers][d]...) {
				if err := v.RemoveLayer(repo, l); err != nil {
					return fmt.Errorf("sweep: remove layer link %s of %s: %w", l, repo, err)
				}
			}
		}
	}
	return nil
}
