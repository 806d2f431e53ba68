// Package assemble builds the image a manifest describes from loose files
// with arbitrary names — a manifest.json, a config, layer tarballs and
// .digest files, as a build hands them over — by hashing every file
// (streaming) and matching it to the manifest's descriptors by digest and
// size. The result is a store.Source over those files, so that the copy
// engine writes the image to any destination with its usual checks.
//
// Matching is strict: a descriptor no file matches is an error naming it,
// unless it is a foreign layer (left for the copy engine's foreign policy:
// kept, or fetched from its urls); a file that matches no descriptor is an
// error naming it, unless IgnoreExtra is set.
package assemble

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/inspect"
	"github.com/ferry-dev/ferry/mediatype"
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/transfer"
	"github.com/ferry-dev/ferry/verify"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrNotManifest means the manifest file is not an image manifest
	// (not JSON, an index, Docker schema 1, or missing its config).
	ErrNotManifest = errors.New("not an image manifest")
	// ErrMissing means a descriptor of the manifest has no file.
	ErrMissing = errors.New("no file matches it")
	// ErrExtra means a file matches no descriptor of the manifest.
	ErrExtra = errors.New("file matches no descriptor")
	// ErrDigestFile means a .digest file disagrees with what it describes.
	ErrDigestFile = errors.New("digest file disagrees")
	// ErrDiffID means a layer does not decompress to its config diff_id.
	ErrDiffID = errors.New("diff_id mismatch")
)

// MaxDigestFileSize bounds a .digest file.
const MaxDigestFileSize = 4 << 10

// Input names the files to assemble.
type Input struct {
	// Manifest is the image manifest file (Docker schema2 or OCI); its
	// bytes are the manifest as written, so its digest is theirs.
	Manifest string
	// Config, when set, is the file that must match the manifest's config.
	Config string
	// Blobs are the other files: layers (and the config when Config is not
	// set), in any order, named anything.
	Blobs []string
	// DigestFiles are .digest files holding "sha256:<hex>". One named
	// FILE.digest beside a given FILE must state that file's digest; any
	// other must state a digest the manifest references (or its own).
	DigestFiles []string
	// IgnoreExtra allows files that match no descriptor; they are skipped.
	IgnoreExtra bool
	// VerifyDiffIDs checks the config's rootfs.diff_ids against the
	// decompressed layers (one extra decompression while hashing).
	VerifyDiffIDs bool
}

// Plan is a manifest with its descriptors matched to files.
type Plan struct {
	// Manifest describes the manifest file.
	Manifest v1.Descriptor
	// Raw is the manifest's bytes.
	Raw []byte
	// Files maps each matched descriptor's digest to its file.
	Files map[v1.Hash]string
	// Foreign lists the foreign layers no file matched: the copy engine
	// keeps them or fetches them from their urls.
	Foreign []v1.Descriptor
	// Ignored lists the files that matched nothing (IgnoreExtra).
	Ignored []string
	// DiffIDsUnchecked lists layers whose diff_id could not be checked
	// with VerifyDiffIDs because they have no file (foreign layers).
	DiffIDsUnchecked []v1.Hash

	path string
}

// Match reads the manifest, hashes every file and matches them up. It
// writes nothing; errors name the file or the digest at fault.
func Match(ctx context.Context, in Input) (*Plan, error) {
	p, m, err := readManifest(in.Manifest)
	if err != nil {
		return nil, err
	}
	descs := append([]v1.Descriptor{m.Config}, m.Layers...)
	byDigest := map[v1.Hash]v1.Descriptor{}
	algos := map[string]bool{"sha256": true}
	for _, d := range descs {
		byDigest[d.Digest] = d
		algos[d.Digest.Algorithm] = true
	}
	files := in.Blobs
	if in.Config != "" {
		files = append([]string{in.Config}, files...)
	}
	hashed := map[string]fileHash{}
	for _, f := range files {
		fh, err := hashFile(ctx, f, algos, in.VerifyDiffIDs)
		if err != nil {
			return nil, err
		}
		hashed[f] = fh
		d, ok := fh.match(byDigest)
		switch {
		case f == in.Config && (!ok || d.Digest != m.Config.Digest):
			return nil, fmt.Errorf("--config %s hashes to %s, not the manifest's config %s: %w", f, fh.sums[m.Config.Digest.Algorithm], m.Config.Digest, blob.ErrDigestMismatch)
		case !ok && in.IgnoreExtra:
			p.Ignored = append(p.Ignored, f)
			continue
		case !ok:
			return nil, fmt.Errorf("%s (%s, %d bytes): %w in manifest %s (--ignore-extra to skip it)", f, fh.sums["sha256"], fh.size, ErrExtra, in.Manifest)
		case d.Size != fh.size:
			return nil, fmt.Errorf("%s: hashes to %s, which manifest %s declares with size %d, but the file has %d bytes: %w", f, d.Digest, in.Manifest, d.Size, fh.size, blob.ErrSizeMismatch)
		}
		if _, dup := p.Files[d.Digest]; !dup {
			p.Files[d.Digest] = f
		}
	}
	for i, d := range descs {
		if _, ok := p.Files[d.Digest]; ok {
			continue
		}
		what := "layer"
		if i == 0 {
			what = "config"
		}
		if i > 0 && mediatype.IsForeign(string(d.MediaType)) {
			p.Foreign = append(p.Foreign, d)
			continue
		}
		return nil, fmt.Errorf("%s %s (%s, %d bytes) of manifest %s: %w", what, d.Digest, d.MediaType, d.Size, in.Manifest, ErrMissing)
	}
	if err := p.checkDigestFiles(in.DigestFiles, hashed); err != nil {
		return nil, err
	}
	if in.VerifyDiffIDs {
		if err := p.checkDiffIDs(m, hashed); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// readManifest reads and checks the manifest file.
func readManifest(path string) (*Plan, *v1.Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("manifest: %w", err)
	}
	defer f.Close()
	raw, err := blob.ReadAtMost(f, mediatype.MaxManifestSize)
	if errors.Is(err, blob.ErrTooLarge) {
		return nil, nil, fmt.Errorf("manifest %s: %w: %w", path, err, ErrNotManifest)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	mt, err := mediatype.Sniff(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("manifest %s: %w: %w", path, ErrNotManifest, err)
	}
	switch mt {
	case types.DockerManifestSchema2, types.OCIManifestSchema1:
	case types.OCIImageIndex, types.DockerManifestList:
		return nil, nil, fmt.Errorf("manifest %s is an index (%s): %w; assemble each image, then copy an index of them", path, mt, ErrNotManifest)
	default:
		return nil, nil, fmt.Errorf("manifest %s has media type %s: %w (want %s or %s)", path, mt, ErrNotManifest, types.DockerManifestSchema2, types.OCIManifestSchema1)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, fmt.Errorf("manifest %s: %w: %w", path, ErrNotManifest, err)
	}
	if m.Config.Digest.Hex == "" {
		return nil, nil, fmt.Errorf("manifest %s has no config: %w", path, ErrNotManifest)
	}
	if len(m.Layers) > transfer.MaxLayers {
		return nil, nil, fmt.Errorf("manifest %s has %d layers, more than the limit of %d", path, len(m.Layers), transfer.MaxLayers)
	}
	h, n, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, err
	}
	p := &Plan{
		Manifest: v1.Descriptor{MediaType: mt, Digest: h, Size: n},
		Raw:      raw,
		Files:    map[v1.Hash]string{},
		path:     path,
	}
	return p, m, nil
}

// fileHash is what one pass over a file learned.
type fileHash struct {
	size   int64
	sums   map[string]v1.Hash // by algorithm
	diffID *v1.Hash           // sha256 of the decompressed stream, when asked and it decompressed
}

func (fh fileHash) match(byDigest map[v1.Hash]v1.Descriptor) (v1.Descriptor, bool) {
	for _, h := range fh.sums {
		if d, ok := byDigest[h]; ok {
			return d, true
		}
	}
	return v1.Descriptor{}, false
}

// hashFile reads path once, hashing it with each algorithm and, with
// diff, hashing what it decompresses to.
func hashFile(ctx context.Context, path string, algos map[string]bool, diff bool) (fileHash, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileHash{}, err
	}
	defer f.Close()
	hs := map[string]hash.Hash{}
	var ws []io.Writer
	for a := range algos {
		h, err := blob.NewHash(v1.Hash{Algorithm: a})
		if err != nil {
			return fileHash{}, fmt.Errorf("%s: %w", path, err)
		}
		hs[a] = h
		ws = append(ws, h)
	}
	var (
		pw   *io.PipeWriter
		dh   = sha256.New()
		done chan error
	)
	if diff {
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		done = make(chan error, 1)
		go func() {
			err := verify.Decompress(pr, dh)
			pr.CloseWithError(err) // a file that is no layer (the config) is read to its end regardless
			done <- err
		}()
		ws = append(ws, &lenient{w: pw})
	}
	n, err := io.Copy(io.MultiWriter(ws...), &ctxReader{ctx: ctx, r: f})
	var derr error
	if pw != nil {
		pw.Close()
		derr = <-done
	}
	if err != nil {
		return fileHash{}, fmt.Errorf("%s: %w", path, err)
	}
	fh := fileHash{size: n, sums: map[string]v1.Hash{}}
	for a, h := range hs {
		fh.sums[a] = v1.Hash{Algorithm: a, Hex: hex.EncodeToString(h.Sum(nil))}
	}
	if diff && derr == nil {
		d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(dh.Sum(nil))}
		fh.diffID = &d
	}
	return fh, nil
}

// lenient writes to w until w fails, then drops the rest: a decompressor
// giving up on a file that is not compressed must not stop its hashing.
type lenient struct {
	w   io.Writer
	err error
}

func (l *lenient) Write(b []byte) (int, error) {
	if l.err == nil {
		_, l.err = l.w.Write(b)
	}
	return len(b), nil
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

// checkDigestFiles checks each .digest file against the file it sits
// beside, or against the manifest's digests.
func (p *Plan) checkDigestFiles(paths []string, hashed map[string]fileHash) error {
	known := map[v1.Hash]bool{p.Manifest.Digest: true}
	for h := range p.Files {
		known[h] = true
	}
	for _, d := range p.Foreign {
		known[d.Digest] = true
	}
	for _, df := range paths {
		want, err := readDigestFile(df)
		if err != nil {
			return err
		}
		if of, fh, ok := describedFile(df, hashed); ok {
			if got := fh.sums[want.Algorithm]; got != want {
				return fmt.Errorf("%s says %s but %s hashes to %s: %w", df, want, of, fh.sums["sha256"], ErrDigestFile)
			}
			continue
		}
		if !known[want] {
			return fmt.Errorf("%s says %s, which manifest %s does not reference: %w", df, want, p.path, ErrDigestFile)
		}
	}
	return nil
}

// describedFile returns the given file a digest file FILE.digest is about.
func describedFile(df string, hashed map[string]fileHash) (string, fileHash, bool) {
	base, ok := strings.CutSuffix(df, ".digest")
	if !ok {
		return "", fileHash{}, false
	}
	for f, fh := range hashed {
		if filepath.Clean(f) == filepath.Clean(base) {
			return f, fh, true
		}
	}
	return "", fileHash{}, false
}

// readDigestFile parses a .digest file: "sha256:<hex>", or a bare sha256
// hex, optionally followed by a file name as sha256sum prints it.
func readDigestFile(path string) (v1.Hash, error) {
	f, err := os.Open(path)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("digest file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxDigestFileSize))
	if err != nil {
		return v1.Hash{}, fmt.Errorf("digest file %s: %w", path, err)
	}
	// PowerShell's Out-File writes UTF-16 with a byte-order mark: drop
	// the mark and the zero bytes of ASCII text.
	for _, bom := range []string{"\xef\xbb\xbf", "\xff\xfe", "\xfe\xff"} {
		b = bytes.TrimPrefix(b, []byte(bom))
	}
	fields := strings.Fields(string(bytes.ReplaceAll(b, []byte{0}, nil)))
	if len(fields) == 0 {
		return v1.Hash{}, fmt.Errorf("digest file %s is empty", path)
	}
	d := strings.ToLower(fields[0])
	if !strings.Contains(d, ":") {
		d = "sha256:" + d
	}
	h, err := v1.NewHash(d)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("digest file %s: %w", path, err)
	}
	if _, err := blob.NewHash(h); err != nil {
		return v1.Hash{}, fmt.Errorf("digest file %s: %w", path, err)
	}
	return h, nil
}

// checkDiffIDs compares the config's diff_ids with the layers'
// decompressed digests computed while hashing.
func (p *Plan) checkDiffIDs(m *v1.Manifest, hashed map[string]fileHash) error {
	cfgFile := p.Files[m.Config.Digest]
	f, err := os.Open(cfgFile)
	if err != nil {
		return err
	}
	defer f.Close()
	raw, err := blob.ReadAtMost(f, inspect.MaxConfigSize)
	if err != nil {
		return fmt.Errorf("config %s: %w", cfgFile, err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("config %s: %w", cfgFile, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return fmt.Errorf("config %s lists %d diff_ids for the manifest's %d layers: %w", cfgFile, len(cfg.RootFS.DiffIDs), len(m.Layers), ErrDiffID)
	}
	for i, l := range m.Layers {
		file, ok := p.Files[l.Digest]
		if !ok {
			p.DiffIDsUnchecked = append(p.DiffIDsUnchecked, l.Digest)
			continue
		}
		got := hashed[file].diffID
		if got == nil {
			return fmt.Errorf("layer %s (%s): cannot decompress it to check its diff_id: %w", l.Digest, file, ErrDiffID)
		}
		if want := cfg.RootFS.DiffIDs[i]; *got != want {
			return fmt.Errorf("layer %s (%s) decompresses to %s, but config %s says diff_id %s: %w", l.Digest, file, *got, cfgFile, want, ErrDiffID)
		}
	}
	return nil
}

// Source returns a store.Source over the plan's files: Resolve gives the
// manifest, FetchBlob opens the matched file (the copy engine verifies it
// again as it streams) and answers store.ErrNotFound for a foreign layer
// with no file.
func (p *Plan) Source() store.Source { return &source{p: p} }

type source struct{ p *Plan }

var (
	_ store.Source     = (*source)(nil)
	_ store.Named      = (*source)(nil)
	_ store.BlobStater = (*source)(nil)
)

// Name implements store.Named.
func (s *source) Name() string { return "files of " + s.p.path }

// Close implements store.Source.
func (s *source) Close() error { return nil }

// Resolve implements store.Source.
func (s *source) Resolve(ctx context.Context) (v1.Descriptor, error) { return s.p.Manifest, nil }

// FetchManifest implements store.Source.
func (s *source) FetchManifest(ctx context.Context, desc v1.Descriptor) ([]byte, error) {
	if desc.Digest != s.p.Manifest.Digest {
		return nil, fmt.Errorf("manifest %s in %s: %w", desc.Digest, s.Name(), store.ErrNotFound)
	}
	return s.p.Raw, nil
}

// FetchBlob implements store.Source.
func (s *source) FetchBlob(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
	f, ok := s.p.Files[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s in %s: %w", desc.Digest, s.Name(), store.ErrNotFound)
	}
	return os.Open(f)
}

// StatBlob implements store.BlobStater.
func (s *source) StatBlob(ctx context.Context, desc v1.Descriptor) (int64, error) {
	f, ok := s.p.Files[desc.Digest]
	if !ok {
		return 0, fmt.Errorf("blob %s in %s: %w", desc.Digest, s.Name(), store.ErrNotFound)
	}
	fi, err := os.Stat(f)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
