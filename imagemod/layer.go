package imagemod

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/foreign"
)

// Layer is one layer Append adds: a local Path or a foreign URL.
type Layer struct {
	// Path is a tar, a gzip-compressed tar or a directory. A tar is
	// compressed; a directory is tarred deterministically (entries sorted,
	// mtime TarEpoch, owner 0:0, no user or group names) and compressed.
	Path string
	// URL is where a foreign layer's gzip-compressed tar lives. It is
	// read once, under the fetcher's URL policy, to learn its digest, size
	// and diff_id; the bytes stay there and the manifest lists the URL.
	URL string
}

// String names the layer for messages and history.
func (l Layer) String() string {
	if l.URL != "" {
		return l.URL
	}
	return l.Path
}

// TarEpoch is the modification time of every entry of a directory layer.
var TarEpoch = time.Unix(0, 0).UTC()

// preparedLayer is a layer whose digests are known.
type preparedLayer struct {
	layer   Layer
	desc    v1.Descriptor // media type set by the caller
	diffID  v1.Hash
	file    string // the compressed bytes to upload; "" for a foreign layer
	cleanup func()
}

// prepare computes a layer's descriptor and diff_id, compressing into a
// file in tmp when needed. Nothing is held in memory.
func prepare(ctx context.Context, l Layer, tmp string, fetcher *foreign.Fetcher) (*preparedLayer, error) {
	if (l.Path == "") == (l.URL == "") {
		return nil, errors.New("a layer is a path or a URL")
	}
	if l.URL != "" {
		return prepareURL(ctx, l, fetcher)
	}
	st, err := os.Stat(l.Path)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", l.Path, err)
	}
	p := &preparedLayer{layer: l, cleanup: func() {}}
	if !st.IsDir() {
		gz, err := isGzip(l.Path)
		if err != nil {
			return nil, err
		}
		if gz {
			return p, p.hashGzipFile(l.Path)
		}
	}
	return p, p.compress(ctx, tmp, st.IsDir())
}

func isGzip(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("layer %s: %w", path, err)
	}
	defer f.Close()
	var magic [2]byte
	n, _ := io.ReadFull(f, magic[:])
	return n == 2 && magic[0] == 0x1f && magic[1] == 0x8b, nil
}

// hashGzipFile takes a .tar.gz as it is: its digest, and the diff_id of
// what it decompresses to.
func (p *preparedLayer) hashGzipFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("layer %s: %w", path, err)
	}
	defer f.Close()
	d, diff, n, err := hashCompressed(f)
	if err != nil {
		return fmt.Errorf("layer %s: %w", path, err)
	}
	p.desc = v1.Descriptor{Digest: d, Size: n}
	p.diffID, p.file = diff, path
	return nil
}

// hashCompressed reads a gzip stream to its end and returns its digest,
// its size and the digest of what it decompresses to.
func hashCompressed(r io.Reader) (digest, diffID v1.Hash, size int64, err error) {
	ch := &hashCounter{Hash: sha256.New()}
	cr := io.TeeReader(r, ch)
	zr, err := gzip.NewReader(bufio.NewReader(cr))
	if err != nil {
		return v1.Hash{}, v1.Hash{}, 0, fmt.Errorf("not gzip: %w", err)
	}
	dh := sha256.New()
	if _, err := io.Copy(dh, zr); err != nil {
		return v1.Hash{}, v1.Hash{}, 0, fmt.Errorf("decompressing: %w", err)
	}
	// Bytes after the gzip stream are part of the blob.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return v1.Hash{}, v1.Hash{}, 0, err
	}
	return hashOf(ch.Sum(nil)), hashOf(dh.Sum(nil)), ch.n, nil
}

func hashOf(sum []byte) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sum)}
}

// hashCounter hashes and counts what is written to it.
type hashCounter struct {
	hash.Hash
	n int64
}

func (h *hashCounter) Write(b []byte) (int, error) {
	h.n += int64(len(b))
	return h.Hash.Write(b)
}

// compress writes the layer's tar (the file, or the directory tarred)
// gzip-compressed to a temporary file, hashing both streams on the way.
func (p *preparedLayer) compress(ctx context.Context, tmp string, dir bool) error {
	out, err := os.CreateTemp(tmp, "ferry-layer-*.tar.gz")
	if err != nil {
		return fmt.Errorf("layer %s: %w", p.layer.Path, err)
	}
	p.file = out.Name()
	p.cleanup = func() { os.Remove(out.Name()) }
	ch, dh := &hashCounter{Hash: sha256.New()}, sha256.New()
	zw := gzip.NewWriter(io.MultiWriter(out, ch))
	tarOut := io.MultiWriter(zw, dh)
	if dir {
		err = tarDir(ctx, p.layer.Path, tarOut)
	} else {
		err = copyTar(p.layer.Path, tarOut)
	}
	if err == nil {
		err = zw.Close()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		p.cleanup()
		return fmt.Errorf("layer %s: %w", p.layer.Path, err)
	}
	p.desc = v1.Descriptor{Digest: hashOf(ch.Sum(nil)), Size: ch.n}
	p.diffID = hashOf(dh.Sum(nil))
	return nil
}

// copyTar copies a tar file, refusing one that does not start like a tar.
func copyTar(path string, w io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	if _, err := tar.NewReader(bytes.NewReader(peek(br, 512))).Next(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("not a tar or tar.gz: %w", err)
	}
	_, err = io.Copy(w, br)
	return err
}

func peek(br *bufio.Reader, n int) []byte {
	b, _ := br.Peek(n)
	return b
}

// tarDir writes root's tree as a tar: entries in lexical order with
// forward-slash names relative to root, directories ending in '/',
// regular files, symlinks; mtime TarEpoch, uid and gid 0, permission
// bits kept. Other file types are refused.
func tarDir(ctx context.Context, root string, w io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), Mode: int64(info.Mode().Perm()), ModTime: TarEpoch}
		switch {
		case info.Mode().IsRegular():
			hdr.Typeflag, hdr.Size = tar.TypeReg, info.Size()
		case info.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, filepath.ToSlash(target)
		default:
			return fmt.Errorf("%s: %s files cannot go in a layer", path, info.Mode().Type())
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// prepareURL streams a foreign layer once through the fetcher's client
// (URL policy on every request and redirect) to learn its digest, size
// and diff_id.
func prepareURL(ctx context.Context, l Layer, fetcher *foreign.Fetcher) (*preparedLayer, error) {
	if err := foreign.CheckPublishable(l.URL); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("foreign layer %s: %w", l.URL, err)
	}
	resp, err := fetcher.Client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("foreign layer %s: %w", l.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("foreign layer %s: %s", l.URL, resp.Status)
	}
	d, diff, n, err := hashCompressed(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("foreign layer %s: %w", l.URL, err)
	}
	if resp.ContentLength >= 0 && resp.ContentLength != n {
		return nil, fmt.Errorf("foreign layer %s: %w: got %d bytes of %d", l.URL, blob.ErrSizeMismatch, n, resp.ContentLength)
	}
	return &preparedLayer{layer: l, desc: v1.Descriptor{Digest: d, Size: n, URLs: []string{l.URL}}, diffID: diff, cleanup: func() {}}, nil
}

// layerFiles serves the compressed files of the prepared local layers
// (not the foreign ones) as looseBlobs, and lists their descriptors.
func layerFiles(prepared []*preparedLayer) (looseBlobs, []v1.Descriptor) {
	src := looseBlobs{open: map[v1.Hash]func() (io.ReadCloser, error){}}
	var names []string
	var descs []v1.Descriptor
	for _, p := range prepared {
		if p.file == "" {
			continue
		}
		src.open[p.desc.Digest] = func() (io.ReadCloser, error) {
			f, err := os.Open(p.file)
			if err != nil {
				return nil, fmt.Errorf("layer %s: %w", p.layer, err)
			}
			return f, nil
		}
		names = append(names, p.layer.String())
		descs = append(descs, p.desc)
	}
	src.name = strings.Join(names, ", ")
	return src, descs
}
