package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	ggtypes "github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/mediatype"
	"github.com/ferry-dev/ferry/store"
)

// cancelUploadTimeout bounds the DELETE that cancels an abandoned upload,
// and Close's cancelling of all those it holds; at most
// cancelUploadsAtOnce of those go out at once.
var cancelUploadTimeout = 10 * time.Second

const cancelUploadsAtOnce = 8

// MaxManifestSize bounds the manifests and indexes ferry reads (4 MiB, as
// distribution and containerd do).
const MaxManifestSize = mediatype.MaxManifestSize

// ManifestAccept lists every manifest media type ferry reads.
var ManifestAccept = mediatype.Manifests

// Repo is a repository in a registry, bound to one reference. It is both a
// store.Source and a store.Target.
type Repo struct {
	ref  name.Reference
	repo name.Repository
	c    *Client

	// mountClient opens a client whose token also grants pull on a
	// repository to mount from; covered are the repositories c's token
	// already grants pull on, mounters the clients opened so far.
	mountClient func(context.Context, name.Repository) (*Client, error)
	covered     map[string]bool

	mu       sync.Mutex
	pending  map[v1.Hash]string // uploads opened by declined mounts, by digest
	mounters map[string]*Client
	// Renames are the manifests the registry answered with another
	// digest (sha256 for a push by sha512).
	store.Renames
}

var (
	_ store.Source       = (*Repo)(nil)
	_ store.Target       = (*Repo)(nil)
	_ store.Mounter      = (*Repo)(nil)
	_ store.UploadOpener = (*Repo)(nil)
	_ store.Lister       = (*Repo)(nil)
	_ store.Deleter      = (*Repo)(nil)
	_ store.Renamer      = (*Repo)(nil)
)

// Open connects to the repository ref names, with pull access (and push
// access with WithPush).
func Open(ctx context.Context, ref name.Reference, opts ...Option) (*Repo, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	reg, err := NewRegistry(ref.Context().RegistryStr(), o.insecure)
	if err != nil {
		return nil, err
	}
	repo := reg.Repo(ref.Context().RepositoryStr())
	// Re-derive the reference on the registry we built, so that it carries
	// the insecure flag.
	switch r := ref.(type) {
	case name.Digest:
		ref = repo.Digest(r.DigestStr())
	case name.Tag:
		ref = repo.Tag(r.TagStr())
	}
	scope := repo.Scope(transport.PullScope)
	if o.push {
		scope = repo.Scope(transport.PushScope)
	}
	scopes := append([]string{scope}, o.scopes...)
	c, err := o.client(ctx, reg, scopes)
	if err != nil {
		return nil, err
	}
	r := &Repo{ref: ref, repo: repo, c: c, covered: map[string]bool{}}
	for _, s := range scopes {
		r.covered[s] = true
	}
	r.mountClient = func(ctx context.Context, from name.Repository) (*Client, error) {
		return o.client(ctx, reg, append(slices.Clone(scopes), from.Scope(transport.PullScope)))
	}
	return r, nil
}

// clientToMountFrom returns a client whose token grants pull on from as
// well as push here, as a cross-repository mount needs under token
// authentication. A registry's challenge to a mount names both scopes in
// one parameter, which go-containerregistry's transport passes on as one
// scope and token services that read one scope per parameter grant
// nothing for; so the scope is asked for up front, as ggcr's remote.Write
// does for the repositories it mounts from.
func (r *Repo) clientToMountFrom(ctx context.Context, from name.Repository) (*Client, error) {
	if r.mountClient == nil || r.covered[from.Scope(transport.PullScope)] || r.covered[from.Scope(transport.PushScope)] {
		return r.c, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.mounters[from.Name()]; ok {
		return c, nil
	}
	c, err := r.mountClient(ctx, from)
	if err != nil {
		return nil, err
	}
	if r.mounters == nil {
		r.mounters = map[string]*Client{}
	}
	r.mounters[from.Name()] = c
	return c, nil
}

// Name returns the reference as given.
func (r *Repo) Name() string { return r.ref.String() }

// Reference returns the reference the Repo is bound to.
func (r *Repo) Reference() name.Reference { return r.ref }

// Repository returns the repository.
func (r *Repo) Repository() name.Repository { return r.repo }

// Close implements store.Source and store.Target.
func (r *Repo) Close() error {
	r.mu.Lock()
	locs := r.pending
	r.pending = nil
	r.mu.Unlock()
	if len(locs) == 0 {
		return nil
	}
	// Uploads a declined mount opened and no PushBlob took: cancel them
	// rather than leave them to the registry's purge. Together, within
	// cancelUploadTimeout in all: one at a time, a copy interrupted with
	// the network gone took that long for each before ferry could exit.
	ctx, cancel := context.WithTimeout(context.Background(), cancelUploadTimeout)
	defer cancel()
	var g errgroup.Group
	g.SetLimit(cancelUploadsAtOnce)
	for _, loc := range locs {
		g.Go(func() error {
			r.deleteUpload(ctx, loc)
			return nil
		})
	}
	_ = g.Wait()
	return nil
}

func (r *Repo) url(kind, rest string) string {
	return fmt.Sprintf("%s://%s/v2/%s/%s/%s", r.repo.Scheme(), r.repo.RegistryStr(), r.repo.RepositoryStr(), kind, rest)
}

// Resolve implements store.Source: HEAD the manifest (falling back to GET
// when the registry's HEAD answer lacks a digest or media type).
func (r *Repo) Resolve(ctx context.Context) (v1.Descriptor, error) {
	resp, err := r.c.do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, r.url("manifests", r.ref.Identifier()), nil)
		if err == nil {
			req.Header.Set("Accept", strings.Join(ManifestAccept, ","))
		}
		return req, err
	}, http.StatusOK)
	if err == nil {
		resp.Body.Close()
		d, derr := v1.NewHash(resp.Header.Get("Docker-Content-Digest"))
		mt := resp.Header.Get("Content-Type")
		if derr == nil && mt != "" && resp.ContentLength > 0 {
			if dg, ok := r.ref.(name.Digest); ok && dg.DigestStr() != d.String() {
				return v1.Descriptor{}, fmt.Errorf("%s: registry answered digest %s", r.ref, d)
			}
			return v1.Descriptor{MediaType: ggtypes.MediaType(mt), Digest: d, Size: resp.ContentLength}, nil
		}
	} else if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnauthorized) {
		return v1.Descriptor{}, fmt.Errorf("%s: %w", r.ref, err)
	}
	_, desc, err := r.getManifest(ctx, r.ref.Identifier())
	return desc, err
}

// FetchManifest implements store.Source. The bytes must have the
// descriptor's size (when it gives one) and hash, with the descriptor's
// algorithm (sha256 or sha512), to its digest.
func (r *Repo) FetchManifest(ctx context.Context, desc v1.Descriptor) ([]byte, error) {
	where := fmt.Sprintf("manifest %s@%s", r.repo, desc.Digest)
	if desc.Size > MaxManifestSize {
		return nil, fmt.Errorf("%s: %d bytes exceeds the %d-byte limit", where, desc.Size, MaxManifestSize)
	}
	if _, err := blob.NewHash(desc.Digest); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	raw, _, err := r.getManifest(ctx, desc.Digest.String())
	if err != nil {
		return nil, err
	}
	if err := checkManifest(desc, raw); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return raw, nil
}

func (r *Repo) getManifest(ctx context.Context, ident string) ([]byte, v1.Descriptor, error) {
	resp, err := r.c.do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url("manifests", ident), nil)
		if err == nil {
			req.Header.Set("Accept", strings.Join(ManifestAccept, ","))
		}
		return req, err
	}, http.StatusOK)
	where := r.repo.String() + sep(ident) + ident
	if err != nil {
		return nil, v1.Descriptor{}, fmt.Errorf("%s: %w", where, err)
	}
	defer resp.Body.Close()
	if resp.ContentLength > MaxManifestSize {
		return nil, v1.Descriptor{}, fmt.Errorf("%s: manifest of %d bytes exceeds the %d-byte limit", where, resp.ContentLength, MaxManifestSize)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
	if err != nil {
		return nil, v1.Descriptor{}, fmt.Errorf("%s: read manifest: %w", where, err)
	}
	if len(raw) > MaxManifestSize {
		return nil, v1.Descriptor{}, fmt.Errorf("%s: manifest exceeds the %d-byte limit", where, MaxManifestSize)
	}
	d, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	mt := resp.Header.Get("Content-Type")
	if mt == "" || mt == "application/json" || mt == "text/plain" {
		// A body that does not say is read as an OCI image manifest, as
		// before; transfer refuses what it then cannot decode.
		sniffed, err := mediatype.Sniff(raw)
		if err != nil {
			sniffed = ggtypes.OCIManifestSchema1
		}
		mt = string(sniffed)
	}
	return raw, v1.Descriptor{MediaType: ggtypes.MediaType(mt), Digest: d, Size: int64(len(raw))}, nil
}

func sep(ident string) string {
	if strings.Contains(ident, ":") {
		return "@"
	}
	return ":"
}

// FetchBlob implements store.Source.
func (r *Repo) FetchBlob(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
	resp, err := r.c.do(ctx, func() (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, r.url("blobs", desc.Digest.String()), nil)
	}, http.StatusOK)
	if err != nil {
		return nil, fmt.Errorf("blob %s in %s: %w", desc.Digest, r.repo, err)
	}
	return resp.Body, nil
}

// HasBlob implements store.Target.
func (r *Repo) HasBlob(ctx context.Context, desc v1.Descriptor) (bool, error) {
	size, err := r.StatBlob(ctx, desc)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return desc.Size <= 0 || size < 0 || size == desc.Size, nil
}

// StatBlob implements store.BlobStater with a HEAD request (-1 when the
// registry does not say the length).
func (r *Repo) StatBlob(ctx context.Context, desc v1.Descriptor) (int64, error) {
	resp, err := r.c.do(ctx, func() (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodHead, r.url("blobs", desc.Digest.String()), nil)
	}, http.StatusOK)
	if err != nil {
		return 0, fmt.Errorf("blob %s in %s: %w", desc.Digest, r.repo, err)
	}
	resp.Body.Close()
	return resp.ContentLength, nil
}

// PushBlob implements store.Target with a single streamed PUT: POST opens
// the upload (or a declined mount opened it), PUT sends all the bytes with
// the digest. The bytes are checked on the way (see uploadBody): bytes that
// are not the descriptor's fail with an error wrapping blob.ErrDigestMismatch
// or blob.ErrSizeMismatch before the registry has all of them, so it commits
// nothing. An upload the PUT does not complete is cancelled.
func (r *Repo) PushBlob(ctx context.Context, desc v1.Descriptor, src io.Reader) error {
	body, err := newUploadBody(src, desc)
	if err != nil {
		return fmt.Errorf("blob %s to %s: %w", desc.Digest, r.repo, err)
	}
	loc := r.takeUpload(desc.Digest)
	if loc == "" {
		var err error
		if loc, err = r.startUpload(ctx, r.c, ""); err != nil {
			return fmt.Errorf("blob %s to %s: %w", desc.Digest, r.repo, err)
		}
	}
	if err := r.putBlob(ctx, loc, desc, body); err != nil {
		r.cancelUpload(ctx, loc)
		return fmt.Errorf("blob %s to %s: %w", desc.Digest, r.repo, err)
	}
	return nil
}

// putBlob completes the upload at loc with body's bytes. When body fails
// its error is the one returned: it says what was wrong with the bytes,
// where the HTTP client's error or the registry's answer to a cut-short
// body would only say that the upload broke.
func (r *Repo) putBlob(ctx context.Context, loc string, desc v1.Descriptor, body *uploadBody) error {
	u, err := url.Parse(loc)
	if err != nil {
		return fmt.Errorf("upload location %q: %w", loc, err)
	}
	q := u.Query()
	q.Set("digest", desc.Digest.String())
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), io.NopCloser(body))
	if err != nil {
		return err
	}
	req.ContentLength = desc.Size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := r.c.http.Do(req)
	if err == nil {
		err = check(resp, http.StatusCreated)
		resp.Body.Close()
	}
	if berr := body.failed(); berr != nil {
		return berr
	}
	return err
}

// startUpload POSTs to the upload endpoint through c, with a mount
// request when query has one. It returns the upload location, or "" when
// the blob was mounted.
func (r *Repo) startUpload(ctx context.Context, c *Client, query string) (string, error) {
	u := r.url("blobs", "uploads/") + query
	resp, err := c.do(ctx, func() (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	}, http.StatusAccepted, http.StatusCreated)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusCreated {
		return "", nil
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", errors.New("registry gave no upload location")
	}
	base, _ := url.Parse(u)
	l, err := base.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("upload location %q: %w", loc, err)
	}
	return l.String(), nil
}

// MountBlob implements store.Mounter: a cross-repository mount when src is
// a repository of the same registry.
func (r *Repo) MountBlob(ctx context.Context, desc v1.Descriptor, src store.Source) (bool, error) {
	from, ok := src.(*Repo)
	if !ok || from.repo.RegistryStr() != r.repo.RegistryStr() || from.repo.RepositoryStr() == r.repo.RepositoryStr() {
		return false, nil
	}
	c, err := r.clientToMountFrom(ctx, from.repo)
	if err != nil {
		return false, fmt.Errorf("mount %s from %s to %s: %w", desc.Digest, from.repo, r.repo, err)
	}
	q := "?" + url.Values{"mount": {desc.Digest.String()}, "from": {from.repo.RepositoryStr()}}.Encode()
	loc, err := r.startUpload(ctx, c, q)
	if err != nil {
		return false, fmt.Errorf("mount %s from %s to %s: %w", desc.Digest, from.repo, r.repo, err)
	}
	if loc == "" {
		return true, nil
	}
	// The registry declined and opened an upload instead, which the
	// distribution spec lets the client go on with: PushBlob takes it,
	// sparing a DELETE of this session and a POST of another.
	r.keepUpload(ctx, desc.Digest, loc)
	return false, nil
}

// OpenUpload implements store.UploadOpener: a POST that opens an upload
// for desc, unless one is open already (a declined mount's); PushBlob
// takes it, and Close cancels it when none does.
func (r *Repo) OpenUpload(ctx context.Context, desc v1.Descriptor) error {
	r.mu.Lock()
	_, open := r.pending[desc.Digest]
	r.mu.Unlock()
	if open {
		return nil
	}
	loc, err := r.startUpload(ctx, r.c, "")
	if err != nil {
		return fmt.Errorf("blob %s to %s: %w", desc.Digest, r.repo, err)
	}
	if loc != "" {
		r.keepUpload(ctx, desc.Digest, loc)
	}
	return nil
}

// keepUpload keeps the upload at loc for the PushBlob of d; one kept
// before for d is cancelled.
func (r *Repo) keepUpload(ctx context.Context, d v1.Hash, loc string) {
	r.mu.Lock()
	if r.pending == nil {
		r.pending = map[v1.Hash]string{}
	}
	old, ok := r.pending[d]
	r.pending[d] = loc
	r.mu.Unlock()
	if ok {
		r.cancelUpload(ctx, old)
	}
}

// takeUpload returns (and forgets) the upload a declined mount of digest
// opened, or "".
func (r *Repo) takeUpload(digest v1.Hash) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	loc := r.pending[digest]
	delete(r.pending, digest)
	return loc
}

// cancelUpload deletes an upload session, best effort: the registry
// purges abandoned uploads anyway. It goes out even when ctx is cancelled
// (a cancelled push is one such abandoned upload), within
// cancelUploadTimeout.
func (r *Repo) cancelUpload(ctx context.Context, loc string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelUploadTimeout)
	defer cancel()
	r.deleteUpload(ctx, loc)
}

// deleteUpload deletes the upload session at loc under ctx, best effort.
func (r *Repo) deleteUpload(ctx context.Context, loc string) {
	if ctx.Err() != nil {
		return
	}
	if req, err := http.NewRequestWithContext(ctx, http.MethodDelete, loc, nil); err == nil {
		if resp, err := r.c.http.Do(req); err == nil {
			resp.Body.Close()
		}
	}
}

// PushManifest implements store.Target. A manifest known by a digest of
// another algorithm than sha256 that the registry refuses by that digest
// (DIGEST_INVALID, although putManifest has checked the bytes hash to it:
// distribution takes manifests by sha256 digests only) is pushed by its
// sha256 digest instead; StoredAs then says so.
func (r *Repo) PushManifest(ctx context.Context, desc v1.Descriptor, raw []byte) error {
	err := r.putManifest(ctx, desc.Digest.String(), desc, raw)
	if err != nil && desc.Digest.Algorithm != "sha256" && errors.Is(err, blob.ErrDigestMismatch) {
		canonical := blob.DescriptorOf(raw, desc.MediaType).Digest
		if err2 := r.putManifest(ctx, canonical.String(), desc, raw); err2 == nil {
			r.Remember(desc.Digest, canonical)
			return nil
		}
	}
	return err
}

// Tag implements store.Target: PUT the manifest under the reference's tag
// (or by digest when the reference is a digest).
func (r *Repo) Tag(ctx context.Context, desc v1.Descriptor, raw []byte) error {
	if _, ok := r.ref.(name.Digest); ok {
		if r.ref.Identifier() != desc.Digest.String() {
			return fmt.Errorf("%s: cannot write %s under a different digest", r.ref, desc.Digest)
		}
		return r.putManifest(ctx, desc.Digest.String(), desc, raw)
	}
	return r.putManifest(ctx, r.ref.Identifier(), desc, raw)
}

// putManifest PUTs raw under ident once it has checked that raw is the
// manifest desc names: a registry told to store it by tag would move the
// tag before anyone saw the digest differ.
func (r *Repo) putManifest(ctx context.Context, ident string, desc v1.Descriptor, raw []byte) error {
	if err := checkManifest(desc, raw); err != nil {
		return fmt.Errorf("manifest %s%s%s: %w", r.repo, sep(ident), ident, err)
	}
	resp, err := r.c.do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, r.url("manifests", ident), bytes.NewReader(raw))
		if err == nil {
			req.Header.Set("Content-Type", string(desc.MediaType))
		}
		return req, err
	}, http.StatusCreated, http.StatusOK, http.StatusAccepted)
	if err != nil {
		return fmt.Errorf("manifest %s%s%s: %w", r.repo, sep(ident), ident, classifyPut(err))
	}
	resp.Body.Close()
	got := resp.Header.Get("Docker-Content-Digest")
	if got != "" && !sameContent(got, desc.Digest, raw) {
		return fmt.Errorf("manifest %s%s%s: registry stored it as %s, not %s", r.repo, sep(ident), ident, got, desc.Digest)
	}
	if h, err := v1.NewHash(got); err == nil && h != desc.Digest {
		r.Remember(desc.Digest, h)
	}
	return nil
}

// checkManifest checks that raw hashes to desc's digest and, when desc
// gives a size, has it.
func checkManifest(desc v1.Descriptor, raw []byte) error {
	if err := blob.CheckBytes(desc.Digest, raw); err != nil {
		return err
	}
	if desc.Size > 0 && int64(len(raw)) != desc.Size {
		return fmt.Errorf("%w: got %d bytes, declared %d", blob.ErrSizeMismatch, len(raw), desc.Size)
	}
	return nil
}

// sameContent reports whether the digest a registry answered and want
// both name raw. Registries name content with their own algorithm
// (distribution: sha256, whatever was pushed), so a manifest known by its
// sha512 digest is compared in each digest's own algorithm.
func sameContent(got string, want v1.Hash, raw []byte) bool {
	if got == want.String() {
		return true
	}
	h, err := v1.NewHash(got)
	if err != nil || h.Algorithm == want.Algorithm {
		return false
	}
	return blob.Names(h, raw) && blob.Names(want, raw)
}
