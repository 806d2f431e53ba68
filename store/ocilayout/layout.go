// Package ocilayout is the store backend for an OCI image layout directory
// (image-spec 1.0/1.1): an oci-layout file, index.json, and blobs under
// blobs/<algorithm>/<hex>.
//
//	DIR/
//	  oci-layout            {"imageLayoutVersion":"1.0.0"}
//	  index.json            one entry per tagged image, the tag in the
//	                        org.opencontainers.image.ref.name annotation;
//	                        an untagged entry per referrer (signature,
//	                        SBOM) AddReferrer recorded (see referrers.go)
//	  blobs/sha256/<hex>    manifests, indexes, configs and layers
//
// Several images share one layout and their blobs are stored once. Every
// blob is written to a temporary name in its final directory and renamed
// only after its size and digest match; index.json is replaced atomically
// the same way.
package ocilayout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/internal/atomicfile"
	"github.com/ferry-dev/ferry/mediatype"
	"github.com/ferry-dev/ferry/store"
)

// RefNameAnnotation holds an image's tag in index.json.
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// Layout is an OCI layout bound to one image: a tag, a digest, or (with
// neither) the layout's only image.
type Layout struct {
	dir    string
	name   string // how Name spells the location
	fsys   fs.FS  // what reads go through: the directory, or an archive's index
	tag    string
	digest string
	ro     bool // OpenFS: nothing is written

	facts factCache // what the layout's manifests say of their subjects

	prepare sync.Once
	wmu     sync.Mutex
	created bool             // the first write made the directory
	wrote   []string         // blob files written, removed again with a directory made for nothing
	tagged  bool             // Tag wrote index.json
	using   bool             // counted among the directory's users (use)
	listed  map[v1.Hash]bool // referrers AddReferrer listed in index.json
}

var (
	_ store.Source    = (*Layout)(nil)
	_ store.Target    = (*Layout)(nil)
	_ store.Named     = (*Layout)(nil)
	_ store.Referrers = (*Layout)(nil)
)

// Open binds to the image tag (or digest) names in the layout at dir.
func Open(dir, tag, digest string) *Layout {
	return &Layout{dir: dir, name: "oci:" + dir, fsys: os.DirFS(dir), tag: tag, digest: digest}
}

// OpenFS binds a read-only layout whose files fsys serves (for example an
// archive's table of contents); name is the location for messages.
func OpenFS(name string, fsys fs.FS, tag, digest string) *Layout {
	return &Layout{dir: name, name: name, fsys: fsys, tag: tag, digest: digest, ro: true}
}

// dirs holds, per layout directory, what the Layouts of this process
// share: the lock on its index.json (the Layouts a sync opens into one
// layout, one per image, each add their tag and referrers) and how many
// of them use its contents.
var dirs sync.Map // absolute directory -> *dirState

type dirState struct {
	index sync.Mutex // serializes index.json updates

	mu    sync.Mutex
	users int // Layouts that wrote to it or found a blob there, not closed
}

// state returns the directory's shared state.
func (l *Layout) state() *dirState {
	key := l.dir
	if abs, err := filepath.Abs(l.dir); err == nil {
		key = abs
	}
	v, _ := dirs.LoadOrStore(key, new(dirState))
	return v.(*dirState)
}

// lockIndex locks the layout's index.json against the other updates of
// this process and returns the unlock.
func (l *Layout) lockIndex() func() {
	st := l.state()
	st.index.Lock()
	return st.index.Unlock
}

// use counts this Layout among the directory's users, once: it writes
// there, or relies on a blob found there (HasBlob), so a Layout that
// created the directory and fails does not remove what this one needs.
func (l *Layout) use() {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.using {
		return
	}
	l.using = true
	st := l.state()
	st.mu.Lock()
	st.users++
	st.mu.Unlock()
}

// release uncounts this Layout and reports whether no other Layout of
// this process uses the directory.
func (l *Layout) release() (alone bool) {
	l.wmu.Lock()
	using := l.using
	l.using = false
	l.wmu.Unlock()
	st := l.state()
	st.mu.Lock()
	defer st.mu.Unlock()
	if using {
		st.users--
	}
	return st.users == 0
}

// updateIndex rewrites index.json (a new one when there is none yet)
// with what change makes of it, atomically, under the directory's lock;
// nothing is written when change returns false.
func (l *Layout) updateIndex(change func(idx *v1.IndexManifest) bool) error {
	defer l.lockIndex()()
	idx, err := l.ReadIndex()
	if errors.Is(err, store.ErrNotFound) {
		idx, err = &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}, nil
	}
	if err != nil {
		return err
	}
	if !change(idx) {
		return nil
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(l.dir, "index.json"), b)
}

// Name returns the location as written.
func (l *Layout) Name() string {
	switch {
	case l.digest != "":
		return l.name + "@" + l.digest
	case l.tag != "":
		return l.name + ":" + l.tag
	}
	return l.name
}

// LayoutFileContent is what the oci-layout file holds.
const LayoutFileContent = `{"imageLayoutVersion":"1.0.0"}`

// BlobName is the slash-separated name of a blob in a layout,
// blobs/<algorithm>/<hex>.
func BlobName(d v1.Hash) string { return "blobs/" + d.Algorithm + "/" + d.Hex }

// Close implements store.Source and store.Target.
//
// When this Layout's writes made the directory and tagged nothing in it
// (the copy failed or was interrupted) — index.json absent, or listing
// only referrers this Layout's AddReferrer added — Close removes what they
// wrote, that index.json, and the directories left empty, so that a
// failed pull or attach leaves no layout without its image behind. Files
// other writers put there stay, and nothing is removed while another
// Layout of this process uses the directory (a sync's other images: one
// may have found a blob this one wrote and skipped its own push).
func (l *Layout) Close() error {
	alone := l.release()
	l.wmu.Lock()
	created, wrote, listed := l.created && !l.tagged, l.wrote, l.listed
	l.created, l.wrote, l.listed = false, nil, nil
	l.wmu.Unlock()
	if !created || !alone {
		// Another Layout of this process writes there or relies on a
		// blob this one wrote (it found it and skipped its push).
		return nil
	}
	if !l.removeListedOnly(listed) {
		return nil
	}
	for _, p := range wrote {
		os.Remove(p)
	}
	os.Remove(filepath.Join(l.dir, "oci-layout"))
	if entries, err := os.ReadDir(filepath.Join(l.dir, "blobs")); err == nil {
		for _, e := range entries {
			os.Remove(filepath.Join(l.dir, "blobs", e.Name())) // only when empty
		}
	}
	os.Remove(filepath.Join(l.dir, "blobs"))
	os.Remove(l.dir)
	return nil
}

func (l *Layout) blobPath(d v1.Hash) string {
	return filepath.Join(l.dir, "blobs", d.Algorithm, d.Hex)
}

// ReadIndex reads and parses index.json.
func (l *Layout) ReadIndex() (*v1.IndexManifest, error) {
	p := l.name + ": index.json"
	f, err := l.fsys.Open("index.json")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: not an OCI layout (no index.json): %w", l.dir, store.ErrNotFound)
		}
		return nil, err
	}
	defer f.Close()
	b, err := blob.ReadAtMost(f, mediatype.MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: malformed: %w", p, err)
	}
	if err := mediatype.CheckSizes(b); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return idx, nil
}

// ErrNotManifest means a digest named a blob of the layout that is not an
// image manifest or index (a layer, a config).
var ErrNotManifest = errors.New("not an image manifest or index")

// Resolve implements store.Source. With neither a tag nor a digest it is
// the layout's only image: the referrers listed beside it (AddReferrer)
// are not images of their own.
func (l *Layout) Resolve(ctx context.Context) (v1.Descriptor, error) {
	idx, err := l.ReadIndex()
	if err != nil {
		return v1.Descriptor{}, err
	}
	if l.digest != "" {
		// Entries with this digest (the same manifest under several
		// tags) are all one image: the first describes it, without the
		// tag it happens to carry.
		for _, d := range idx.Manifests {
			if d.Digest.String() == l.digest {
				return withoutRefName(d), nil
			}
		}
		// A digest need not be listed in index.json: any manifest blob.
		return l.resolveBlob()
	}
	var match []v1.Descriptor
	for _, d := range idx.Manifests {
		if l.tag == "" || d.Annotations[RefNameAnnotation] == l.tag {
			match = append(match, d)
		}
	}
	if l.tag == "" && len(match) > 1 {
		match = l.dropReferrers(ctx, match)
	}
	switch len(match) {
	case 0:
		return v1.Descriptor{}, fmt.Errorf("%s: no such image in the layout: %w", l.Name(), store.ErrNotFound)
	case 1:
		return match[0], nil
	}
	return v1.Descriptor{}, fmt.Errorf("%s: the layout holds %d images (%s); name one with :TAG or @DIGEST", l.Name(), len(match), imageNames(match))
}

// imageNames lists index.json entries as a user names them: :TAG, or
// @DIGEST when untagged; the first few, for a message.
func imageNames(entries []v1.Descriptor) string {
	const most = 8
	var names []string
	for i, d := range entries {
		if i == most {
			names = append(names, fmt.Sprintf("and %d more", len(entries)-most))
			break
		}
		if tag := d.Annotations[RefNameAnnotation]; tag != "" {
			names = append(names, ":"+tag)
		} else {
			names = append(names, "@"+d.Digest.String())
		}
	}
	return strings.Join(names, ", ")
}

// withoutRefName returns d without the tag annotation (its other
// annotations kept, in a copy).
func withoutRefName(d v1.Descriptor) v1.Descriptor {
	if _, ok := d.Annotations[RefNameAnnotation]; !ok {
		return d
	}
	ann := make(map[string]string, len(d.Annotations))
	for k, v := range d.Annotations {
		if k != RefNameAnnotation {
			ann[k] = v
		}
	}
	if len(ann) == 0 {
		ann = nil
	}
	d.Annotations = ann
	return d
}

// resolveBlob describes the manifest or index blob l.digest names, which
// index.json does not list. A blob larger than mediatype.MaxManifestSize is refused
// before it is read; one that is not a manifest is an error wrapping
// ErrNotManifest and store.ErrNotFound (no image has that digest).
func (l *Layout) resolveBlob() (v1.Descriptor, error) {
	h, err := v1.NewHash(l.digest)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%s: %w", l.Name(), err)
	}
	name, err := l.checkedBlobName(h)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%s: %w", l.Name(), err)
	}
	f, err := l.fsys.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return v1.Descriptor{}, fmt.Errorf("%s: no such image in the layout: %w", l.Name(), store.ErrNotFound)
	}
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%s: %w", l.Name(), err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%s: %w", l.Name(), err)
	}
	if fi.Size() > mediatype.MaxManifestSize {
		return v1.Descriptor{}, fmt.Errorf("%s: %w: blob %s is %w (%d bytes, more than the %d a manifest may hold)", l.Name(), store.ErrNotFound, h, ErrNotManifest, fi.Size(), mediatype.MaxManifestSize)
	}
	raw, err := blob.ReadAtMost(f, mediatype.MaxManifestSize)
	if errors.Is(err, blob.ErrTooLarge) {
		return v1.Descriptor{}, fmt.Errorf("%s: %w: blob %s is %w (%w)", l.Name(), store.ErrNotFound, h, ErrNotManifest, err)
	}
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%s: blob %s: %w", l.Name(), h, err)
	}
	mt, err := mediatype.Sniff(raw)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%s: %w: blob %s is %w (%v)", l.Name(), store.ErrNotFound, h, ErrNotManifest, err)
	}
	return v1.Descriptor{MediaType: mt, Digest: h, Size: int64(len(raw))}, nil
}

// FetchManifest implements store.Source.
func (l *Layout) FetchManifest(ctx context.Context, desc v1.Descriptor) ([]byte, error) {
	if desc.Size > mediatype.MaxManifestSize {
		return nil, fmt.Errorf("manifest %s in %s: %d bytes exceeds the %d-byte limit", desc.Digest, l.dir, desc.Size, mediatype.MaxManifestSize)
	}
	rc, err := l.FetchBlob(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	vr, err := blob.NewReader(rc, desc.Digest, desc.Size, l.name)
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(vr)
	if err != nil {
		return nil, err
	}
	if err := mediatype.CheckSizes(raw); err != nil {
		return nil, fmt.Errorf("manifest %s in %s: %w", desc.Digest, l.name, err)
	}
	return raw, nil
}

// checkedBlobName returns the blob's name in fsys, refusing digests that
// would name no blob (or another path).
func (l *Layout) checkedBlobName(d v1.Hash) (string, error) {
	name := BlobName(d)
	if d.Algorithm == "" || d.Hex == "" || !fs.ValidPath(name) {
		return "", fmt.Errorf("blob %q in %s: invalid digest", d, l.name)
	}
	return name, nil
}

// FetchBlob implements store.Source.
func (l *Layout) FetchBlob(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
	name, err := l.checkedBlobName(desc.Digest)
	if err != nil {
		return nil, err
	}
	f, err := l.fsys.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s in %s: %w", desc.Digest, l.name, store.ErrNotFound)
	}
	return f, err
}

// StatBlob implements store.BlobStater.
func (l *Layout) StatBlob(ctx context.Context, desc v1.Descriptor) (int64, error) {
	name, err := l.checkedBlobName(desc.Digest)
	if err != nil {
		return 0, err
	}
	fi, err := fs.Stat(l.fsys, name)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("blob %s in %s: %w", desc.Digest, l.name, store.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("blob %s in %s: %w", desc.Digest, l.name, err)
	}
	return fi.Size(), nil
}

// HasBlob implements store.Target: the file exists with the declared size.
func (l *Layout) HasBlob(ctx context.Context, desc v1.Descriptor) (bool, error) {
	l.use()
	fi, err := os.Stat(l.blobPath(desc.Digest))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return fi.Size() == desc.Size, nil
}

func (l *Layout) init() error {
	l.use()
	l.prepare.Do(func() {
		if _, err := os.Lstat(l.dir); errors.Is(err, fs.ErrNotExist) {
			l.wmu.Lock()
			l.created = true
			l.wmu.Unlock()
			return
		}
		// A killed earlier write left its temporary files.
		atomicfile.RemoveStale(l.dir, "")
		if entries, err := os.ReadDir(filepath.Join(l.dir, "blobs")); err == nil {
			for _, e := range entries {
				if e.IsDir() {
					atomicfile.RemoveStale(filepath.Join(l.dir, "blobs", e.Name()), "")
				}
			}
		}
	})
	if err := os.MkdirAll(filepath.Join(l.dir, "blobs"), 0o755); err != nil {
		return fmt.Errorf("create layout %s: %w", l.dir, err)
	}
	p := filepath.Join(l.dir, "oci-layout")
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	return atomicfile.Write(p, []byte(LayoutFileContent))
}

// PushBlob implements store.Target. The bytes are hashed as they are
// written and the file is renamed into place only when they match.
func (l *Layout) PushBlob(ctx context.Context, desc v1.Descriptor, r io.Reader) error {
	if err := l.init(); err != nil {
		return err
	}
	p := l.blobPath(desc.Digest)
	if err := WriteBlobFile(p, desc, r, l.dir); err != nil {
		return err
	}
	l.wmu.Lock()
	if l.created {
		l.wrote = append(l.wrote, p)
	}
	l.wmu.Unlock()
	return nil
}

// WriteBlobFile streams the blob desc names from r into the file final
// (its directory created if needed): to a temporary name beside it, hashed
// as it is written, renamed into place only when size and digest match.
// where names the store for messages.
func WriteBlobFile(final string, desc v1.Descriptor, r io.Reader, where string) error {
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return err
	}
	tmp, err := atomicfile.CreateTemp(filepath.Dir(final), ".tmp-"+desc.Digest.Hex[:min(12, len(desc.Digest.Hex))]+"-*")
	if err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := blob.CopyVerified(tmp, r, desc); err != nil {
		return fmt.Errorf("write blob %s to %s: %w", desc.Digest, where, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write blob %s to %s: %w", desc.Digest, where, err)
	}
	ok = true // Replace removes tmp when it fails
	if err := atomicfile.Replace(tmp.Name(), final); err != nil {
		if _, serr := os.Stat(final); errors.Is(err, atomicfile.ErrInUse) && serr == nil {
			// Windows: the blob is there, open for reading; its name is
			// its digest, so it is already the blob being written.
			return nil
		}
		return fmt.Errorf("write blob %s to %s: %w", desc.Digest, where, err)
	}
	return nil
}

// PushManifest implements store.Target.
func (l *Layout) PushManifest(ctx context.Context, desc v1.Descriptor, raw []byte) error {
	return l.PushBlob(ctx, desc, bytes.NewReader(raw))
}

// Tag implements store.Target: it writes the manifest, then adds or
// replaces the tag's entry in index.json, leaving other entries alone.
func (l *Layout) Tag(ctx context.Context, desc v1.Descriptor, raw []byte) error {
	if err := l.PushManifest(ctx, desc, raw); err != nil {
		return err
	}
	entry := v1.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}
	if l.tag != "" {
		entry.Annotations = map[string]string{RefNameAnnotation: l.tag}
	}
	err := l.updateIndex(func(idx *v1.IndexManifest) bool {
		var kept []v1.Descriptor
		for _, d := range idx.Manifests {
			if l.tag != "" && d.Annotations[RefNameAnnotation] == l.tag {
				continue
			}
			if l.tag == "" && d.Digest == desc.Digest && d.Annotations[RefNameAnnotation] == "" {
				continue
			}
			kept = append(kept, d)
		}
		idx.Manifests = append(kept, entry)
		return true
	})
	if err == nil {
		l.wmu.Lock()
		l.tagged = true
		l.wmu.Unlock()
	}
	return err
}
