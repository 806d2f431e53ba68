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
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/ocilayout"
)

// ErrUnsafePath means an archive entry would land outside the archive's
// own tree (.., an absolute path, a drive letter or a backslash).
var ErrUnsafePath = errors.New("unsafe path in archive")

// Source reads an oci-archive.
type Source struct {
	*ocilayout.Layout
	f *os.File
}

// Close closes the archive file.
func (s *Source) Close() error { return s.f.Close() }

// OpenSource scans the archive at p and binds to the image tag names (the
// only image when tag is empty).
func OpenSource(p, tag string) (*Source, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("oci-archive:%s: %w", p, err)
	}
	toc, err := Scan(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("oci-archive:%s: %w", p, err)
	}
	return &Source{Layout: ocilayout.OpenFS("oci-archive:"+p, toc, tag, ""), f: f}, nil
}

// TOC is an archive's table of contents, served as an fs.FS.
type TOC struct {
	r       io.ReaderAt
	entries map[string]entry
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
	toc := &TOC{r: f, entries: map[string]entry{}}
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

// Open implements fs.FS.
func (t *TOC) Open(name string) (fs.File, error) {
	e, ok := t.entries[name]
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

// Target writes an oci-archive.
type Target struct {
	path, tag string
	f         *os.File
	tw        *tar.Writer

	mu      sync.Mutex
	written map[v1.Hash]bool
	root    *v1.Descriptor
	err     error
}

var _ store.Target = (*Target)(nil)

// Create starts an archive that becomes p when the copy completes.
func Create(p, tag string) (*Target, error) {
	dir := filepath.Dir(p)
	f, err := os.CreateTemp(dir, "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("oci-archive:%s: %w", p, err)
	}
	t := &Target{path: p, tag: tag, f: f, tw: tar.NewWriter(f), written: map[v1.Hash]bool{}}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := t.tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
			t.discard()
			return nil, err
		}
	}
	return t, nil
}

// Name returns the location.
func (t *Target) Name() string { return "oci-archive:" + t.path }

// HasBlob implements store.Target.
func (t *Target) HasBlob(ctx context.Context, desc v1.Descriptor) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.written[desc.Digest], nil
}

// PushBlob implements store.Target. Blobs are appended one at a time; a
// blob whose bytes do not match breaks the archive, which is then
// discarded at Close.
func (t *Target) PushBlob(ctx context.Context, desc v1.Descriptor, r io.Reader) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil {
		return t.err
	}
	if t.written[desc.Digest] {
		return nil
	}
	err := t.add("blobs/"+desc.Digest.Algorithm+"/"+desc.Digest.Hex, desc, r)
	if err != nil {
		t.err = fmt.Errorf("oci-archive:%s: %w", t.path, err)
		return t.err
	}
	t.written[desc.Digest] = true
	return nil
}

func (t *Target) add(name string, desc v1.Descriptor, r io.Reader) error {
	vr, err := blob.NewReader(r, desc.Digest, desc.Size, "")
	if err != nil {
		return err
	}
	if err := t.tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o444, Size: desc.Size, ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	if _, err := io.Copy(t.tw, vr); err != nil {
		return err
	}
	if !vr.Verified() {
		return fmt.Errorf("blob %s: %w", desc.Digest, blob.ErrSizeMismatch)
	}
	return nil
}

// PushManifest implements store.Target.
func (t *Target) PushManifest(ctx context.Context, desc v1.Descriptor, raw []byte) error {
	return t.PushBlob(ctx, desc, bytes.NewReader(raw))
}

// Tag implements store.Target: the root is recorded for index.json, which
// Close writes.
func (t *Target) Tag(ctx context.Context, desc v1.Descriptor, raw []byte) error {
	if err := t.PushManifest(ctx, desc, raw); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	d := v1.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}
	if t.tag != "" {
		d.Annotations = map[string]string{ocilayout.RefNameAnnotation: t.tag}
	}
	t.root = &d
	return nil
}

// Close finishes the archive and renames it into place when the copy
// completed (Tag was called and nothing failed); otherwise it removes it.
func (t *Target) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.root == nil || t.err != nil {
		t.discard()
		return t.err
	}
	idx, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{*t.root}})
	if err != nil {
		t.discard()
		return err
	}
	for _, e := range []struct {
		name string
		b    []byte
	}{{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)}, {"index.json", idx}} {
		if err := t.tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: 0o444, Size: int64(len(e.b)), ModTime: time.Unix(0, 0)}); err != nil {
			t.discard()
			return err
		}
		if _, err := t.tw.Write(e.b); err != nil {
			t.discard()
			return err
		}
	}
	if err := t.tw.Close(); err != nil {
		t.discard()
		return err
	}
	if err := t.f.Sync(); err != nil {
		t.discard()
		return err
	}
	if err := t.f.Close(); err != nil {
		os.Remove(t.f.Name())
		return err
	}
	if err := os.Rename(t.f.Name(), t.path); err != nil {
		os.Remove(t.f.Name())
		return fmt.Errorf("oci-archive:%s: %w", t.path, err)
	}
	return nil
}

func (t *Target) discard() {
	t.f.Close()
	os.Remove(t.f.Name())
}
