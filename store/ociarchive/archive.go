// Package ociarchive is the store backend for oci-archive:FILE, a tar of an
// OCI image layout, read and written as a stream: reading scans the tar
// headers once and then serves each file as a section of the archive (no
// unpacking to a temporary directory); writing streams blobs into a
// temporary file beside FILE that is renamed over it only when the copy
// finished, so a failed copy leaves nothing half-written.
package ociarchive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/internal/atomicfile"
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/ocilayout"
)

// ErrUnsafePath means an archive entry would land outside the archive's
// own tree (.., an absolute path, a drive letter or a backslash).
var ErrUnsafePath = errors.New("unsafe path in archive")

// Source reads an oci-archive.
type Source struct {
	*ocilayout.Layout
	f    *os.File
	toc  *TOC
	path string
}

// Close closes the archive file.
func (s *Source) Close() error { return s.f.Close() }

// OpenSource scans the archive at p and binds to the image tag names (the
// only image when tag is empty).
func OpenSource(p, tag string) (*Source, error) {
	return OpenSourceAt(p, tag, "")
}

// OpenSourceAt is OpenSource selecting the image by digest when digest
// ("sha256:...") is set: an entry of index.json or any manifest blob in
// the archive, as oci-archive:FILE@DIGEST names it.
func OpenSourceAt(p, tag, digest string) (*Source, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("oci-archive:%s: %w", p, err)
	}
	toc, err := Scan(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("oci-archive:%s: %w", p, err)
	}
	return &Source{Layout: ocilayout.OpenFS("oci-archive:"+p, toc, tag, digest), f: f, toc: toc, path: p}, nil
}

// Image returns a source for the image with the given digest in the same
// archive (for bundles, whose images are told apart by annotations). It
// shares the archive file: close the Source, not the image.
func (s *Source) Image(digest string) *ocilayout.Layout {
	return ocilayout.OpenFS("oci-archive:"+s.path, s.toc, "", digest)
}

// TOC is an archive's table of contents, served as an fs.FS. Symbolic
// links inside the archive (docker save and skopeo write them between
// legacy layer directories) are followed, never out of the archive.
type TOC struct {
	r       io.ReaderAt
	entries map[string]entry
	links   map[string]string // link name -> target name, both cleaned
}

type entry struct {
	off, size int64
	mod       time.Time
}

// posReader tracks the offset tar has consumed, seeking when tar skips.
type posReader struct {
	f   io.ReadSeeker
	pos int64
}

func (p *posReader) Read(b []byte) (int, error) {
	n, err := p.f.Read(b)
	p.pos += int64(n)
	return n, err
}

func (p *posReader) Seek(off int64, whence int) (int64, error) {
	n, err := p.f.Seek(off, whence)
	if err == nil {
		p.pos = n
	}
	return n, err
}

// CheckEntryName refuses names that could escape the destination on any OS.
func CheckEntryName(name string) (string, error) {
	if strings.Contains(name, `\`) || (len(name) >= 2 && name[1] == ':') {
		return "", fmt.Errorf("%w: %q", ErrUnsafePath, name)
	}
	clean := strings.TrimPrefix(name, "./")
	clean = strings.TrimSuffix(clean, "/")
	if clean == "" || clean == "." {
		return ".", nil
	}
	if !fs.ValidPath(clean) || path.Clean(clean) != clean {
		return "", fmt.Errorf("%w: %q", ErrUnsafePath, name)
	}
	return clean, nil
}

// Scan reads the tar headers of f once and records where each file's bytes
// lie. It refuses unsafe names and archives cut short.
func Scan(f *os.File) (*TOC, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	pr := &posReader{f: f}
	tr := tar.NewReader(pr)
	toc := &TOC{r: f, entries: map[string]entry{}, links: map[string]string{}}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("truncated or malformed archive: %w", err)
		}
		name, err := CheckEntryName(h.Name)
		if err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink {
			target := h.Linkname
			if h.Typeflag == tar.TypeSymlink && !strings.HasPrefix(target, "/") {
				target = path.Join(path.Dir(name), target)
			}
			// A link that leads outside the archive is simply not served.
			if t, err := CheckEntryName(target); err == nil {
				toc.links[name] = t
			}
			continue
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if pr.pos+h.Size > fi.Size() {
			return nil, fmt.Errorf("truncated archive: %s needs %d bytes at offset %d, the file has %d", name, h.Size, pr.pos, fi.Size())
		}
		toc.entries[name] = entry{off: pr.pos, size: h.Size, mod: h.ModTime}
	}
	if len(toc.entries) == 0 {
		return nil, errors.New("empty or not a tar archive")
	}
	return toc, nil
}

// maxLinkHops bounds how many links Open follows.
const maxLinkHops = 8

// Open implements fs.FS.
func (t *TOC) Open(name string) (fs.File, error) {
	e, ok := t.entries[name]
	for hop := 0; !ok && hop < maxLinkHops; hop++ {
		target, isLink := t.links[name]
		if !isLink {
			break
		}
		name = target
		e, ok = t.entries[name]
	}
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &file{SectionReader: io.NewSectionReader(t.r, e.off, e.size), name: name, e: e}, nil
}

type file struct {
	*io.SectionReader
	name string
	e    entry
}

func (f *file) Stat() (fs.FileInfo, error) { return info{f.name, f.e}, nil }
func (f *file) Close() error               { return nil }

type info struct {
	name string
	e    entry
}

func (i info) Name() string       { return path.Base(i.name) }
func (i info) Size() int64        { return i.e.size }
func (i info) Mode() fs.FileMode  { return 0o444 }
func (i info) ModTime() time.Time { return i.e.mod }
func (i info) IsDir() bool        { return false }
func (i info) Sys() any           { return nil }

// Target writes an oci-archive. It holds one image per copy; a bundle
// puts several in one archive by tagging each root with TagAs.
type Target struct {
	path, tag string
	prefix    string // location prefix for messages: oci-archive or docker-archive
	f         *os.File
	cw        *countingWriter
	tw        *tar.Writer

	mu      sync.Mutex
	written map[v1.Hash]entry // where each blob's bytes lie in the temp file
	roots   []v1.Descriptor
	extra   []extraFile
	err     error
}

type extraFile struct {
	name string
	b    []byte
}

// countingWriter tracks the temp file's size, so that the offset of each
// blob is known and it can be read back (ReadBlob).
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

var _ store.Target = (*Target)(nil)

// Create starts an archive that becomes p when the copy completes. tag,
// when set, names the image in index.json.
func Create(p, tag string) (*Target, error) {
	return CreateAs("oci-archive", p, tag)
}

// CreateAs is Create with another location prefix for messages, for
// formats built on an oci-archive (docker-archive).
func CreateAs(prefix, p, tag string) (*Target, error) {
	dir := filepath.Dir(p)
	// A killed earlier write of this archive left its temporary file.
	atomicfile.RemoveStale(dir, "."+filepath.Base(p)+".tmp-")
	f, err := atomicfile.CreateTemp(dir, "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("%s:%s: %w", prefix, p, err)
	}
	cw := &countingWriter{w: f}
	t := &Target{path: p, tag: tag, prefix: prefix, f: f, cw: cw, tw: tar.NewWriter(cw), written: map[v1.Hash]entry{}}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := t.tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
			t.discard()
			return nil, fmt.Errorf("%s: %w", t.Name(), err)
		}
	}
	return t, nil
}

// Name returns the location.
func (t *Target) Name() string { return t.prefix + ":" + t.path }

// HasBlob implements store.Target.
func (t *Target) HasBlob(ctx context.Context, desc v1.Descriptor) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.written[desc.Digest]
	return ok, nil
}

// PushBlob implements store.Target. Blobs are appended one at a time. A
// blob whose bytes fail to arrive or do not match is cut off again, so
// that the copy engine may retry it; if that fails, the archive is broken
// and discarded at Close.
func (t *Target) PushBlob(ctx context.Context, desc v1.Descriptor, r io.Reader) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil {
		return t.err
	}
	if _, ok := t.written[desc.Digest]; ok {
		return nil
	}
	// Write out the previous entry's padding, so that start is where this
	// entry's header begins.
	if err := t.tw.Flush(); err != nil {
		t.err = fmt.Errorf("%s: %w", t.Name(), err)
		return t.err
	}
	start := t.cw.n
	e, err := t.add(ocilayout.BlobName(desc.Digest), desc, r)
	if err != nil {
		if rerr := t.rewind(start); rerr != nil {
			t.err = fmt.Errorf("%s: %w (and removing the partial blob: %w)", t.Name(), err, rerr)
			return t.err
		}
		return fmt.Errorf("%s: %w", t.Name(), err)
	}
	t.written[desc.Digest] = e
	return nil
}

// rewind cuts the temporary file back to off, the start of an entry, and
// starts a new tar writer there.
func (t *Target) rewind(off int64) error {
	if err := t.f.Truncate(off); err != nil {
		return err
	}
	if _, err := t.f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	t.cw.n = off
	t.tw = tar.NewWriter(t.cw)
	return nil
}

func (t *Target) add(name string, desc v1.Descriptor, r io.Reader) (entry, error) {
	if err := t.tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o444, Size: desc.Size, ModTime: time.Unix(0, 0)}); err != nil {
		return entry{}, err
	}
	e := entry{off: t.cw.n, size: desc.Size}
	if _, err := blob.CopyVerified(t.tw, r, desc); err != nil {
		return entry{}, err
	}
	return e, nil
}

// ReadBlob returns the bytes of a blob already written, up to max bytes
// (configs and manifests, which formats built on this one need again).
func (t *Target) ReadBlob(d v1.Hash, max int64) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.written[d]
	if !ok {
		return nil, fmt.Errorf("%s: blob %s was not written: %w", t.Name(), d, store.ErrNotFound)
	}
	if e.size > max {
		return nil, fmt.Errorf("%s: blob %s is %d bytes, more than %d", t.Name(), d, e.size, max)
	}
	if err := t.tw.Flush(); err != nil {
		return nil, err
	}
	b := make([]byte, e.size)
	if _, err := t.f.ReadAt(b, e.off); err != nil {
		return nil, fmt.Errorf("%s: reading back %s: %w", t.Name(), d, err)
	}
	return b, nil
}

// AddFile adds a small file written at Close, before index.json (for
// example docker save's manifest.json).
func (t *Target) AddFile(name string, b []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.extra = append(t.extra, extraFile{name, b})
}

// PushManifest implements store.Target.
func (t *Target) PushManifest(ctx context.Context, desc v1.Descriptor, raw []byte) error {
	return t.PushBlob(ctx, desc, bytes.NewReader(raw))
}

// Tag implements store.Target: the root is recorded for index.json, which
// Close writes, under the target's tag when it has one.
func (t *Target) Tag(ctx context.Context, desc v1.Descriptor, raw []byte) error {
	var ann map[string]string
	if t.tag != "" {
		ann = map[string]string{ocilayout.RefNameAnnotation: t.tag}
	}
	return t.TagAs(ctx, desc, raw, ann)
}

// TagAs records one more root for index.json with the given annotations;
// a root with the same ref.name annotation as an earlier one replaces it.
func (t *Target) TagAs(ctx context.Context, desc v1.Descriptor, raw []byte, annotations map[string]string) error {
	if err := t.PushManifest(ctx, desc, raw); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	d := v1.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size, Annotations: annotations}
	if ref := annotations[ocilayout.RefNameAnnotation]; ref != "" {
		for i, r := range t.roots {
			if r.Annotations[ocilayout.RefNameAnnotation] == ref {
				t.roots[i] = d
				return nil
			}
		}
	}
	t.roots = append(t.roots, d)
	return nil
}

// Close finishes the archive and renames it into place when the copy
// completed (at least one root was tagged and nothing failed); otherwise
// it removes it.
func (t *Target) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.roots) == 0 || t.err != nil {
		t.discard()
		return t.err
	}
	idx, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: t.roots})
	if err != nil {
		t.discard()
		return fmt.Errorf("%s: index.json: %w", t.Name(), err)
	}
	files := append(t.extra, extraFile{"oci-layout", []byte(ocilayout.LayoutFileContent)}, extraFile{"index.json", idx})
	for _, e := range files {
		if err := t.tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: 0o444, Size: int64(len(e.b)), ModTime: time.Unix(0, 0)}); err != nil {
			t.discard()
			return fmt.Errorf("%s: write %s: %w", t.Name(), e.name, err)
		}
		if _, err := t.tw.Write(e.b); err != nil {
			t.discard()
			return fmt.Errorf("%s: write %s: %w", t.Name(), e.name, err)
		}
	}
	if err := t.tw.Close(); err != nil {
		t.discard()
		return fmt.Errorf("%s: finish the archive: %w", t.Name(), err)
	}
	if err := t.f.Sync(); err != nil {
		t.discard()
		return fmt.Errorf("%s: %w", t.Name(), err)
	}
	if err := t.f.Close(); err != nil {
		os.Remove(t.f.Name())
		return fmt.Errorf("%s: %w", t.Name(), err)
	}
	// Over an existing archive too; on Windows, one open elsewhere is left
	// as it was, with an error wrapping atomicfile.ErrInUse.
	if err := atomicfile.Replace(t.f.Name(), t.path); err != nil {
		return fmt.Errorf("%s: %w", t.Name(), err)
	}
	return nil
}

// Abort discards the archive whatever was written.
func (t *Target) Abort() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.roots = nil
	t.discard()
}

func (t *Target) discard() {
	t.f.Close()
	os.Remove(t.f.Name())
}
