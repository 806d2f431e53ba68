package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-dev/ferry/mediatype"
	"github.com/ferry-dev/ferry/store"
)

// ErrTagDeleteRefused means a registry refused to delete a tag: the
// distribution spec lets a registry that does not delete tags answer 400
// or 405 (distribution before v3 does; v3 deletes tags when deletes are
// enabled and answers 405 UNSUPPORTED when they are not).
var ErrTagDeleteRefused = errors.New("the registry refused to delete the tag")

// pointerJobs is how many tags Pointers resolves at a time.
const pointerJobs = 8

// WithDelete also asks for delete access to repo (push, pull and delete):
// a registry with token authentication (distribution, Harbor) checks the
// delete action on DELETE, which push access does not grant.
func WithDelete(repo name.Repository) Option {
	return func(o *options) error {
		o.scopes = append(o.scopes, repo.Scope(transport.DeleteScope))
		return nil
	}
}

// Delete implements store.Deleter. A reference by tag removes that tag
// alone (DELETE /v2/<name>/manifests/<tag>): the manifest, the other
// tags on it and the indexes listing it stay. When the registry refuses
// (400, 405 or UNSUPPORTED) the error wraps ErrTagDeleteRefused and names
// the digest form, which deletes the manifest itself with every tag on
// it; the manifest is never deleted in the tag's place. A reference by
// digest deletes the manifest (DELETE /v2/<name>/manifests/<digest>);
// the registry drops the tags pointing at it, and indexes listing it are
// left with an entry whose manifest is gone (Pointers lists both first).
func (r *Repo) Delete(ctx context.Context) error {
	ident := r.ref.Identifier()
	if _, ok := r.ref.(name.Digest); ok {
		if err := r.deleteManifest(ctx, ident); err != nil {
			return fmt.Errorf("delete %s@%s: %w", r.repo, ident, err)
		}
		return nil
	}
	err := r.deleteManifest(ctx, ident)
	switch {
	case err == nil:
		return nil
	case !tagDeleteRefused(err):
		return fmt.Errorf("delete tag %s:%s: %w", r.repo, ident, err)
	}
	// Name the digest form, so the user can choose to delete the
	// manifest; the registry's answer stays in the chain.
	digestForm := r.repo.String() + "@<digest>"
	if desc, rerr := r.Resolve(ctx); rerr == nil {
		digestForm = r.repo.String() + "@" + desc.Digest.String()
	}
	return fmt.Errorf("%w %s:%s (%w); deleting by digest, %s, removes the manifest it points at and every tag on it",
		ErrTagDeleteRefused, r.repo, ident, err, digestForm)
}

// deleteManifest sends DELETE /v2/<name>/manifests/<ident>.
func (r *Repo) deleteManifest(ctx context.Context, ident string) error {
	resp, err := r.c.do(ctx, func() (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodDelete, r.url("manifests", ident), nil)
	}, http.StatusAccepted, http.StatusOK)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// tagDeleteRefused reports whether a registry's answer to DELETE by tag
// says it does not delete tags (or deletes at all).
func tagDeleteRefused(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	return te.StatusCode == http.StatusBadRequest || te.StatusCode == http.StatusMethodNotAllowed || hasCode(te, transport.UnsupportedErrorCode)
}

// Pointers is what in a repository points at one manifest.
type Pointers struct {
	// Digest names the manifest.
	Digest v1.Hash `json:"digest"`
	// Tags are the repository's tags that resolve to it, sorted.
	Tags []string `json:"tags"`
	// Indexes are the repository's tagged indexes that list it, directly
	// or through an index they list, sorted by tag.
	Indexes []TaggedIndex `json:"indexes"`
}

// TaggedIndex is an index found under a tag.
type TaggedIndex struct {
	Tag    string  `json:"tag"`
	Digest v1.Hash `json:"digest"`
}

// Pointers resolves the reference and lists what in its repository
// points at that manifest: every tag resolving to it, and every tagged
// index listing it (indexes nested up to mediatype.MaxIndexDepth deep are
// followed). It reads every tag (HEAD, a few at a time) and every tagged
// index once, so it costs a request per tag. Indexes no tag names cannot be listed through
// the registry API and are not found.
func (r *Repo) Pointers(ctx context.Context) (*Pointers, error) {
	desc, err := r.Resolve(ctx)
	if err != nil {
		return nil, err
	}
	tags, err := r.Tags(ctx)
	if err != nil {
		return nil, err
	}
	s := &pointerScan{r: r, target: desc.Digest, lists: map[v1.Hash]bool{}}
	p := &Pointers{Digest: desc.Digest}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pointerJobs)
	for _, tag := range tags {
		g.Go(func() error {
			at := &Repo{ref: r.repo.Tag(tag), repo: r.repo, c: r.c}
			d, err := at.Resolve(gctx)
			if errors.Is(err, store.ErrNotFound) {
				return nil // deleted meanwhile
			}
			if err != nil {
				return err
			}
			if d.Digest == desc.Digest {
				mu.Lock()
				p.Tags = append(p.Tags, tag)
				mu.Unlock()
				return nil
			}
			if !d.MediaType.IsIndex() {
				return nil
			}
			found, err := s.indexLists(gctx, d, 0)
			if err != nil || !found {
				return err
			}
			mu.Lock()
			p.Indexes = append(p.Indexes, TaggedIndex{Tag: tag, Digest: d.Digest})
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("what points at %s@%s: %w", r.repo, desc.Digest, err)
	}
	sort.Strings(p.Tags)
	sort.Slice(p.Indexes, func(i, j int) bool { return p.Indexes[i].Tag < p.Indexes[j].Tag })
	return p, nil
}

// pointerScan remembers which indexes list the target, so that an index
// under many tags is read once (or a few times, when tags race).
type pointerScan struct {
	r      *Repo
	target v1.Hash
	mu     sync.Mutex
	lists  map[v1.Hash]bool
}

// indexLists reports whether the index d lists the target, directly or
// through the indexes it lists.
func (s *pointerScan) indexLists(ctx context.Context, d v1.Descriptor, depth int) (bool, error) {
	if depth > mediatype.MaxIndexDepth {
		return false, nil
	}
	s.mu.Lock()
	found, ok := s.lists[d.Digest]
	s.mu.Unlock()
	if ok {
		return found, nil
	}
	raw, err := s.r.FetchManifest(ctx, d)
	if err != nil {
		return false, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return false, fmt.Errorf("index %s@%s: %w", s.r.repo, d.Digest, err)
	}
	for _, e := range idx.Manifests {
		if e.Digest == s.target {
			found = true
			break
		}
		if !e.MediaType.IsIndex() {
			continue
		}
		sub, err := s.indexLists(ctx, e, depth+1)
		if errors.Is(err, store.ErrNotFound) {
			continue // a dangling entry lists nothing
		}
		if err != nil {
			return false, err
		}
		if sub {
			found = true
			break
		}
	}
	s.mu.Lock()
	s.lists[d.Digest] = found
	s.mu.Unlock()
	return found, nil
}
