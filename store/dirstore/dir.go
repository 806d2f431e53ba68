// Package dirstore is the store backend for the layout of skopeo's dir:
// transport (containers/image's directory package): one image, or one
// index, per directory, its blobs in files named by their hex digest.
//
//	DIR/
//	  version                 "Directory Transport Version: 1.1\n"
//	  manifest.json           the image's manifest, or the index
//	  <hex>.manifest.json     each instance manifest of an index
//	  <hex>                   configs and layers
//	  signature-N, <hex>.signature-N   skopeo's signatures (left alone,
//	                          removed when another image replaces this one)
//
// Reading needs only manifest.json and the files it names; a foreign layer
// whose file is absent (skopeo and ferry --foreign keep leave it out) is
// store.ErrNotFound, so the copy engine fetches it from its urls.
//
// Writing refuses a directory that is neither empty nor a dir: image.
// Every blob and instance manifest is written to a temporary name and
// renamed only after its size and digest match; manifest.json comes last
// (Tag), replaced atomically, so a failed copy leaves no manifest.json, or
// the previous image's untouched. Once the new manifest.json is in place,
// the files of the image it replaced are removed: like skopeo's, the
// directory holds one image.
package dirstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/internal/atomicfile"
	"github.com/ferry-dev/ferry/mediatype"
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/ocilayout"
)

// Version is the content of the version file, as skopeo writes it.
const Version = "Directory Transport Version: 1.1\n"

// Files of the layout.
const (
	ManifestFile = "manifest.json"
	VersionFile  = "version"
)

// ErrNotImageDir means a directory to write to holds something other than
// a dir: image, which ferry will not overwrite.
var ErrNotImageDir = errors.New("not a dir: image directory")

// Dir is a dir: image directory.
type Dir struct {
	dir string

	mu      sync.Mutex
	started bool // the version file is written
}

var (
	_ store.Source     = (*Dir)(nil)
	_ store.Target     = (*Dir)(nil)
	_ store.Named      = (*Dir)(nil)
	_ store.BlobStater = (*Dir)(nil)
)

// Open binds to the image in dir, for reading.
func Open(dir string) *Dir { return &Dir{dir: dir} }

// Create binds to dir for writing. dir may be missing, empty, or hold a
// dir: image (which the written image replaces); anything else is refused
// with an error wrapping ErrNotImageDir. Nothing is written until the
// first blob.
func Create(dir string) (*Dir, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(entries) == 0) {
		return &Dir{dir: dir}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dir:%s: %w", dir, err)
	}
	v, err := os.ReadFile(filepath.Join(dir, VersionFile))
	if err != nil || string(v) != Version {
		return nil, fmt.Errorf("dir:%s: not empty and has no %q file saying %q: %w", dir, VersionFile, Version, ErrNotImageDir)
	}
	return &Dir{dir: dir}, nil
}

// Name returns the location as written.
func (d *Dir) Name() string { return "dir:" + d.dir }

// Close implements store.Source and store.Target.
func (d *Dir) Close() error { return nil }

var hexRe = regexp.MustCompile(`^[a-f0-9]{32,128}$`)

// blobPath returns the file of a blob, refusing digests that are not hex
// (which could name other paths).
func (d *Dir) blobPath(h v1.Hash) (string, error) {
	if !hexRe.MatchString(h.Hex) {
		return "", fmt.Errorf("blob %q in %s: invalid digest", h, d.Name())
	}
	return filepath.Join(d.dir, h.Hex), nil
}

func (d *Dir) instancePath(h v1.Hash) (string, error) {
	p, err := d.blobPath(h)
	return p + ".manifest.json", err
}

// readManifestFile reads a manifest file of at most mediatype.MaxManifestSize bytes,
// writing what it reads to h too when h is not nil (a hash, so that the
// bytes are hashed as they are read).
func (d *Dir) readManifestFile(p string, h io.Writer) ([]byte, error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: no %s: %w", d.Name(), filepath.Base(p), store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.Name(), err)
	}
	defer f.Close()
	var r io.Reader = f
	if h != nil {
		r = io.TeeReader(f, h)
	}
	b, err := blob.ReadAtMost(r, mediatype.MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", d.Name(), filepath.Base(p), err)
	}
	return b, nil
}

// Resolve implements store.Source: the manifest or index in manifest.json.
func (d *Dir) Resolve(ctx context.Context) (v1.Descriptor, error) {
	h := sha256.New()
	raw, err := d.readManifestFile(filepath.Join(d.dir, ManifestFile), h)
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := mediatype.Sniff(raw)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%s: %s: %w", d.Name(), ManifestFile, err)
	}
	return v1.Descriptor{MediaType: mt, Digest: sum("sha256", h), Size: int64(len(raw))}, nil
}

// sum returns the digest h has computed.
func sum(algorithm string, h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: algorithm, Hex: hex.EncodeToString(h.Sum(nil))}
}

// FetchManifest implements store.Source: the instance manifest
// <hex>.manifest.json, or manifest.json when that is the manifest desc
// names (the image the directory holds). Any other digest is
// store.ErrNotFound.
func (d *Dir) FetchManifest(ctx context.Context, desc v1.Descriptor) ([]byte, error) {
	if desc.Size > mediatype.MaxManifestSize {
		return nil, fmt.Errorf("manifest %s in %s: %d bytes exceeds the %d-byte limit", desc.Digest, d.Name(), desc.Size, mediatype.MaxManifestSize)
	}
	p, err := d.instancePath(desc.Digest)
	if err != nil {
		return nil, err
	}
	h, err := blob.NewHash(desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("manifest %s in %s: %w", desc.Digest, d.Name(), err)
	}
	raw, err := d.readManifestFile(p, h)
	if errors.Is(err, store.ErrNotFound) {
		h.Reset()
		raw, err = d.readManifestFile(filepath.Join(d.dir, ManifestFile), h)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("manifest %s in %s: no %s or %s: %w",
				desc.Digest, d.Name(), filepath.Base(p), ManifestFile, store.ErrNotFound)
		case err == nil && sum(desc.Digest.Algorithm, h) != desc.Digest:
			// manifest.json is another manifest: this one is not in
			// the directory.
			return nil, fmt.Errorf("manifest %s in %s: no %s, and %s is another manifest: %w",
				desc.Digest, d.Name(), filepath.Base(p), ManifestFile, store.ErrNotFound)
		}
	}
	if err != nil {
		return nil, err
	}
	if desc.Size >= 0 && int64(len(raw)) != desc.Size {
		return nil, fmt.Errorf("manifest %s in %s: %w: got %d bytes, declared %d", desc.Digest, d.Name(), blob.ErrSizeMismatch, len(raw), desc.Size)
	}
	if got := sum(desc.Digest.Algorithm, h); got != desc.Digest {
		return nil, fmt.Errorf("manifest %s in %s: %w: content hashes to %s", desc.Digest, d.Name(), blob.ErrDigestMismatch, got)
	}
	return raw, nil
}

// FetchBlob implements store.Source. A missing file is store.ErrNotFound.
func (d *Dir) FetchBlob(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
	p, err := d.blobPath(desc.Digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s in %s: %w", desc.Digest, d.Name(), store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s in %s: %w", desc.Digest, d.Name(), err)
	}
	return f, nil
}

// StatBlob implements store.BlobStater.
func (d *Dir) StatBlob(ctx context.Context, desc v1.Descriptor) (int64, error) {
	p, err := d.blobPath(desc.Digest)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("blob %s in %s: %w", desc.Digest, d.Name(), store.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("blob %s in %s: %w", desc.Digest, d.Name(), err)
	}
	return fi.Size(), nil
}

// HasBlob implements store.Target: the file exists with the declared size.
func (d *Dir) HasBlob(ctx context.Context, desc v1.Descriptor) (bool, error) {
	n, err := d.StatBlob(ctx, desc)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil && n == desc.Size, err
}

// start creates the directory and its version file, once.
func (d *Dir) start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started {
		return nil
	}
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", d.Name(), err)
	}
	atomicfile.RemoveStale(d.dir, "") // a killed earlier write's temporaries
	if err := atomicfile.Write(filepath.Join(d.dir, VersionFile), []byte(Version)); err != nil {
		return err
	}
	d.started = true
	return nil
}

// PushBlob implements store.Target: temporary name, verified, renamed.
func (d *Dir) PushBlob(ctx context.Context, desc v1.Descriptor, r io.Reader) error {
	p, err := d.blobPath(desc.Digest)
	if err != nil {
		return err
	}
	if err := d.start(); err != nil {
		return err
	}
	return ocilayout.WriteBlobFile(p, desc, r, d.Name())
}

// PushManifest implements store.Target: an instance manifest of an index,
// as <hex>.manifest.json.
func (d *Dir) PushManifest(ctx context.Context, desc v1.Descriptor, raw []byte) error {
	p, err := d.instancePath(desc.Digest)
	if err != nil {
		return err
	}
	if err := d.start(); err != nil {
		return err
	}
	return ocilayout.WriteBlobFile(p, desc, bytes.NewReader(raw), d.Name())
}

// Tag implements store.Target: it replaces manifest.json atomically, after
// checking raw against desc, then removes the files of the image it
// replaced.
func (d *Dir) Tag(ctx context.Context, desc v1.Descriptor, raw []byte) error {
	vr, err := blob.NewReader(bytes.NewReader(raw), desc.Digest, desc.Size, "")
	if err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, vr); err != nil {
		return fmt.Errorf("manifest %s for %s: %w", desc.Digest, d.Name(), err)
	}
	if err := d.start(); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(d.dir, ManifestFile), raw); err != nil {
		return err
	}
	return d.prune(raw)
}

// staleRe matches the files an image in the layout may own.
var staleRe = regexp.MustCompile(`^(?:[a-f0-9]{32,128}(?:\.manifest\.json|\.signature-[0-9]+)?|signature-[0-9]+)$`)

// prune removes the files of a previous image: those named like blobs,
// instance manifests or signatures that the image in raw does not use.
func (d *Dir) prune(raw []byte) error {
	keep, err := d.referenced(raw)
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return fmt.Errorf("%s: %w", d.Name(), err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() && staleRe.MatchString(e.Name()) && !keep[e.Name()] {
			if err := os.Remove(filepath.Join(d.dir, e.Name())); err != nil {
				return fmt.Errorf("%s: remove the replaced image's %s: %w", d.Name(), e.Name(), err)
			}
		}
	}
	return nil
}

// referenced returns the file names the image or index in raw uses.
func (d *Dir) referenced(raw []byte) (map[string]bool, error) {
	keep := map[string]bool{}
	var walk func(raw []byte, depth int) error
	walk = func(raw []byte, depth int) error {
		var m struct {
			Config    *v1.Descriptor  `json:"config"`
			Layers    []v1.Descriptor `json:"layers"`
			Manifests []v1.Descriptor `json:"manifests"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return fmt.Errorf("%s: %s: %w", d.Name(), ManifestFile, err)
		}
		if m.Config != nil {
			keep[m.Config.Digest.Hex] = true
		}
		for _, l := range m.Layers {
			keep[l.Digest.Hex] = true
		}
		for _, c := range m.Manifests {
			name := c.Digest.Hex + ".manifest.json"
			keep[name] = true
			if depth > mediatype.MaxIndexDepth {
				continue
			}
			p, err := d.instancePath(c.Digest)
			if err != nil {
				return err
			}
			child, err := d.readManifestFile(p, nil)
			if errors.Is(err, store.ErrNotFound) {
				continue // not copied (--platform): nothing of it to keep
			}
			if err != nil {
				return err
			}
			if err := walk(child, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return keep, walk(raw, 0)
}
