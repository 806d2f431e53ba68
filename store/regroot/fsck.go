package regroot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-dev/ferry/internal/regstorage"
	"github.com/ferry-dev/ferry/mediatype"
)

// maxLink bounds a link file: a digest and nothing else.
const maxLink = 1024

// Problem is one thing wrong in a root.
type Problem struct {
	// Path is the file or directory at fault, slash-separated and relative
	// to ROOT/docker/registry/v2.
	Path string `json:"path"`
	// Digest is the blob, manifest or layer concerned, when there is one.
	Digest string `json:"digest,omitempty"`
	// What says what is wrong.
	What string `json:"what"`
}

// Report is what Fsck found.
type Report struct {
	// Blobs and Bytes count the blobs whose content was hashed.
	Blobs int   `json:"blobs"`
	Bytes int64 `json:"bytes"`
	// Repositories, Tags and Links count what was checked.
	Repositories int `json:"repositories"`
	Tags         int `json:"tags"`
	Links        int `json:"links"`
	// Problems lists every fault, sorted by path; empty when the root is
	// sound.
	Problems []Problem `json:"problems"`
	// Uploads lists the unfinished uploads (uploads.go), which are no
	// fault but hold disk space until gc removes them; UploadBytes is
	// their total size.
	Uploads     []Upload `json:"uploads"`
	UploadBytes int64    `json:"uploadBytes"`
}

// OK reports whether no problem was found.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// checker holds the state of one Fsck.
type checker struct {
	data     string // ROOT/docker/registry/v2, OS form
	rep      *Report
	blobs    map[digest.Digest]bool // true: content matches the name
	reported map[string]bool        // paths already in Problems
	// aliases caches whether a blob's content hashes to a digest of
	// another algorithm, keyed by that digest and the blob's.
	aliases map[[2]digest.Digest]bool
}

// Fsck checks the registry storage root at dir, reading only:
//
//   - every blob's data file hashes to the blob's name;
//   - every link file (a repository's layers, manifest revisions, tags'
//     current and index links) holds a digest and points at an existing
//     blob; an alias link (internal/regstorage/aliaslinks: a sha512
//     digest's link holding the sha256 digest the blob is stored by) is
//     sound when the blob's content also hashes to the alias, and a tag
//     may point at an alias revision;
//   - every tag's manifest parses and what it needs is linked in its
//     repository and present: an image's config and layers (foreign layers
//     may be absent), an index's manifests, recursively.
//
// Blobs are hashed as they stream from disk. The error is for a root that
// cannot be checked at all (missing, not a root, unreadable); what is
// wrong inside a root goes to Report.Problems.
func Fsck(ctx context.Context, dir string) (*Report, error) {
	if err := CheckRoot(dir); err != nil {
		return nil, err
	}
	c := &checker{
		data:     filepath.Join(dir, filepath.FromSlash(DataDir)),
		rep:      &Report{Problems: []Problem{}},
		blobs:    map[digest.Digest]bool{},
		reported: map[string]bool{},
		aliases:  map[[2]digest.Digest]bool{},
	}
	if err := c.checkBlobs(ctx); err != nil {
		return nil, err
	}
	repos, err := c.findRepositories()
	if err != nil {
		return nil, err
	}
	for _, name := range repos {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c.checkRepository(name)
	}
	c.rep.Repositories = len(repos)
	if c.rep.Uploads, err = listUploads(ctx, dir); err != nil {
		return nil, err
	}
	for _, u := range c.rep.Uploads {
		c.rep.UploadBytes += u.Size
	}
	sort.SliceStable(c.rep.Problems, func(i, j int) bool { return c.rep.Problems[i].Path < c.rep.Problems[j].Path })
	return c.rep, nil
}

func (c *checker) problem(p string, d digest.Digest, format string, args ...any) {
	if c.reported[p] {
		return
	}
	c.reported[p] = true
	c.rep.Problems = append(c.rep.Problems, Problem{Path: p, Digest: string(d), What: fmt.Sprintf(format, args...)})
}

func (c *checker) osPath(p string) string { return filepath.Join(c.data, filepath.FromSlash(p)) }

// readDir lists a directory, nil when it does not exist.
func (c *checker) readDir(p string) ([]fs.DirEntry, error) {
	entries, err := os.ReadDir(c.osPath(p))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fsck: %w", err)
	}
	return entries, nil
}

// checkBlobs hashes every blobs/<algorithm>/<xx>/<hex>/data.
func (c *checker) checkBlobs(ctx context.Context) error {
	algs, err := c.readDir("blobs")
	if err != nil {
		return err
	}
	for _, a := range algs {
		alg := digest.Algorithm(a.Name())
		if !a.IsDir() || !alg.Available() {
			c.problem("blobs/"+a.Name(), "", "unknown digest algorithm")
			continue
		}
		prefixes, err := c.readDir("blobs/" + a.Name())
		if err != nil {
			return err
		}
		for _, pre := range prefixes {
			hexes, err := c.readDir(path.Join("blobs", a.Name(), pre.Name()))
			if err != nil {
				return err
			}
			for _, h := range hexes {
				if err := ctx.Err(); err != nil {
					return err
				}
				c.checkBlob(alg, pre.Name(), h.Name())
			}
		}
	}
	return nil
}

func (c *checker) checkBlob(alg digest.Algorithm, prefix, hex string) {
	dir := path.Join("blobs", string(alg), prefix, hex)
	d := digest.NewDigestFromEncoded(alg, hex)
	if d.Validate() != nil || !strings.HasPrefix(hex, prefix) {
		c.problem(dir, "", "not a blob directory: the name is not a %s digest under its two-character prefix", alg)
		return
	}
	data := dir + "/data"
	f, err := os.Open(c.osPath(data))
	if err != nil {
		c.problem(data, d, "blob has no data file (%v)", errors.Unwrap(err))
		return
	}
	defer f.Close()
	h := alg.Hash()
	n, err := io.Copy(h, f)
	if err != nil {
		c.problem(data, d, "unreadable after %d bytes: %v", n, err)
		return
	}
	c.rep.Blobs++
	c.rep.Bytes += n
	if got := digest.NewDigest(alg, h); got != d {
		c.blobs[d] = false
		c.problem(data, d, "content (%d bytes) hashes to %s: truncated or corrupt", n, got)
		return
	}
	c.blobs[d] = true
}

// findRepositories lists the repository names: every directory under
// repositories/ holding _manifests or _layers.
func (c *checker) findRepositories() ([]string, error) {
	base := c.osPath("repositories")
	var names []string
	err := filepath.WalkDir(base, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == base {
				return fs.SkipAll
			}
			return err
		}
		if !e.IsDir() {
			return nil
		}
		if strings.HasPrefix(e.Name(), "_") {
			if e.Name() == "_manifests" || e.Name() == "_layers" {
				rel, err := filepath.Rel(base, filepath.Dir(p))
				if err != nil {
					return err
				}
				if n := filepath.ToSlash(rel); len(names) == 0 || names[len(names)-1] != n {
					names = append(names, n)
				}
			}
			return fs.SkipDir
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fsck: %w", err)
	}
	return names, nil
}

// readLink reads the link file at p and checks it names a present blob,
// or, when aliases is given, a revision those aliases name. It returns the
// digest, or "" when the file is missing (reported when required) or
// after reporting what is wrong with it.
func (c *checker) readLink(p string, required bool, aliases map[digest.Digest]digest.Digest) digest.Digest {
	d := c.readLinkDigest(p, required)
	if d == "" {
		return ""
	}
	if _, ok := c.blobs[d]; ok {
		return d
	}
	if _, ok := aliases[d]; ok {
		return d
	}
	c.problem(p, d, "link points at a missing blob")
	return ""
}

// readLinkDigest reads the digest in the link file at p, "" when the file
// is missing (reported when required) or after reporting what is wrong.
func (c *checker) readLinkDigest(p string, required bool) digest.Digest {
	f, err := os.Open(c.osPath(p))
	if errors.Is(err, fs.ErrNotExist) {
		if required {
			c.problem(p, "", "link file missing")
		}
		return ""
	}
	c.rep.Links++
	if err != nil {
		c.problem(p, "", "unreadable link file: %v", err)
		return ""
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxLink))
	if err != nil {
		c.problem(p, "", "unreadable link file: %v", err)
		return ""
	}
	d, err := digest.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		c.problem(p, "", "link file does not hold a digest: %q", b)
		return ""
	}
	return d
}

// readLinkDir reads every <algorithm>/<hex>/link under dir, checking each
// names the blob its directory does, or is a sound alias (the blob it
// names hashes to the directory's digest in the directory's algorithm).
// Links naming themselves may name the aliases given instead of a blob
// (a tag's index of alias revisions). It returns, for each digest whose
// link is sound, the blob it is stored as. A directory without its link
// file is what distribution leaves when it deletes a manifest or layer
// link, so it is no problem unless a tagged image needs the link (see
// checkManifest).
func (c *checker) readLinkDir(dir string, aliases map[digest.Digest]digest.Digest) (map[digest.Digest]digest.Digest, error) {
	linked := map[digest.Digest]digest.Digest{}
	algs, err := c.readDir(dir)
	if err != nil {
		return nil, err
	}
	for _, a := range algs {
		hexes, err := c.readDir(dir + "/" + a.Name())
		if err != nil {
			return nil, err
		}
		for _, h := range hexes {
			p := path.Join(dir, a.Name(), h.Name(), "link")
			want := digest.NewDigestFromEncoded(digest.Algorithm(a.Name()), h.Name())
			if aliases != nil && aliases[want] != "" {
				if d := c.readLinkDigest(p, false); d != "" && d != want {
					c.problem(p, d, "link in the directory of %s names another revision", want)
				} else if d != "" {
					linked[want] = aliases[want]
				}
				continue
			}
			d := c.readLink(p, false, nil)
			switch {
			case d == "":
			case d == want:
				linked[d] = d
			case want.Validate() != nil:
				c.problem(p, d, "link in a directory that is not a digest (%s)", want)
			case want.Algorithm() == d.Algorithm():
				c.problem(p, d, "link in the directory of %s names another blob", want)
			case !c.blobs[d]:
				// The blob is corrupt: reported with the blob.
			case !c.hashesTo(d, want):
				c.problem(p, d, "alias link: the content of %s does not hash to %s", d, want)
			default:
				linked[want] = d
			}
		}
	}
	return linked, nil
}

// hashesTo reports whether blob d's content hashes to alias, in alias's
// algorithm.
func (c *checker) hashesTo(d, alias digest.Digest) bool {
	key := [2]digest.Digest{alias, d}
	if ok, done := c.aliases[key]; done {
		return ok
	}
	ok := false
	if f, err := os.Open(c.osPath(blobData(d))); err == nil {
		v := alias.Verifier()
		_, err = io.Copy(v, f)
		f.Close()
		ok = err == nil && v.Verified()
	}
	c.aliases[key] = ok
	return ok
}

// blobData is the path of blob d's data file.
func blobData(d digest.Digest) string {
	return strings.TrimPrefix(regstorage.BlobPath(d), "/"+regstorage.DataDir+"/")
}

// repoCheck holds one repository's links while its tags are checked.
type repoCheck struct {
	dir string // repositories/<name>
	// layers and revisions map the digests the repository links to the
	// blobs they are stored as (themselves, or the canonical digest of
	// an alias).
	layers    map[digest.Digest]digest.Digest
	revisions map[digest.Digest]digest.Digest
	done      map[digest.Digest]bool // manifests already checked
}

func (c *checker) checkRepository(name string) {
	r := &repoCheck{dir: "repositories/" + name, done: map[digest.Digest]bool{}}
	var err error
	if r.layers, err = c.readLinkDir(r.dir+"/_layers", nil); err != nil {
		c.problem(r.dir+"/_layers", "", "%v", err)
	}
	if r.revisions, err = c.readLinkDir(r.dir+"/_manifests/revisions", nil); err != nil {
		c.problem(r.dir+"/_manifests/revisions", "", "%v", err)
	}
	// A tag may point at a revision alias (ferry serve's tag parameters
	// tag by the digest the client pushed by).
	aliasRevisions := map[digest.Digest]digest.Digest{}
	for d, stored := range r.revisions {
		if d != stored {
			aliasRevisions[d] = stored
		}
	}
	tags, err := c.readDir(r.dir + "/_manifests/tags")
	if err != nil {
		c.problem(r.dir+"/_manifests/tags", "", "%v", err)
	}
	for _, t := range tags {
		c.rep.Tags++
		tdir := r.dir + "/_manifests/tags/" + t.Name()
		if _, err := c.readLinkDir(tdir+"/index", aliasRevisions); err != nil {
			c.problem(tdir+"/index", "", "%v", err)
		}
		d := c.readLink(tdir+"/current/link", true, aliasRevisions)
		if d == "" {
			continue
		}
		c.checkManifest(r, d, "tag "+t.Name())
	}
}

// manifestDoc is what Fsck reads of a manifest or index.
type manifestDoc struct {
	MediaType string       `json:"mediaType"`
	Config    *descriptor  `json:"config"`
	Layers    []descriptor `json:"layers"`
	Manifests []descriptor `json:"manifests"`
}

type descriptor struct {
	MediaType string        `json:"mediaType"`
	Digest    digest.Digest `json:"digest"`
	URLs      []string      `json:"urls"`
}

// checkManifest checks that manifest d is a revision of r, parses, and that
// what it references is linked and present. by names who needs it.
func (c *checker) checkManifest(r *repoCheck, d digest.Digest, by string) {
	if r.done[d] {
		return
	}
	r.done[d] = true
	link := path.Join(r.dir, "_manifests/revisions", string(d.Algorithm()), d.Encoded(), "link")
	stored, ok := r.revisions[d]
	if !ok {
		c.problem(link, d, "manifest needed by %s is not linked in the repository (link file missing)", by)
		return
	}
	if !c.blobs[stored] {
		return // corrupt: reported with the blob
	}
	data := blobData(stored)
	raw, err := os.ReadFile(c.osPath(data))
	if err != nil || len(raw) > mediatype.MaxManifestSize {
		c.problem(data, d, "manifest needed by %s is unreadable or larger than %d bytes", by, mediatype.MaxManifestSize)
		return
	}
	var m manifestDoc
	if err := json.Unmarshal(raw, &m); err != nil {
		c.problem(data, d, "manifest needed by %s does not parse: %v", by, err)
		return
	}
	if m.Config == nil && m.Manifests == nil {
		c.problem(data, d, "manifest needed by %s has neither config nor manifests", by)
		return
	}
	what := "manifest " + string(d)
	for _, child := range m.Manifests {
		c.checkManifest(r, child.Digest, "index "+string(d))
	}
	if m.Config != nil {
		c.checkLayer(r, *m.Config, "config of "+what)
	}
	for _, l := range m.Layers {
		if _, linked := r.layers[l.Digest]; len(l.URLs) > 0 && mediatype.IsForeign(l.MediaType) && !linked {
			continue // foreign, left at its URLs
		}
		c.checkLayer(r, l, "layer of "+what)
	}
}

// checkLayer checks that a config or layer is linked in r and present.
func (c *checker) checkLayer(r *repoCheck, l descriptor, what string) {
	if l.Digest.Validate() != nil {
		c.problem(r.dir, l.Digest, "%s: invalid digest", what)
		return
	}
	if _, ok := r.layers[l.Digest]; ok {
		return
	}
	link := path.Join(r.dir, "_layers", string(l.Digest.Algorithm()), l.Digest.Encoded(), "link")
	c.problem(link, l.Digest, "%s is not linked in the repository (link file missing)", what)
}
