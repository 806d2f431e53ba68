// Package storetest is the contract every store backend keeps, written once
// and run against each of them, as distribution's storage-driver test
// suites are (registry/storage/driver/testsuites): a backend's test is one
// call,
//
//	func TestContract(t *testing.T) { storetest.Run(t, open, storetest.Options{}) }
//
// It is a test-support package: only tests import it.
//
// The contract, case by case (the names are those of the subtests and of
// Options.Gaps):
//
//   - ReadBack: what was written reads back — the tag resolves to the
//     manifest's digest, size and media type, the manifest's bytes are
//     the ones written, and so are the config's and the layers'.
//   - Index: an index and its child manifests read back the same way. A
//     target that implements store.ImageOnly must refuse the index instead.
//   - BlobWrongDigest, BlobTooShort, BlobTooLong: PushBlob refuses bytes
//     that are not the descriptor's, with an error wrapping
//     blob.ErrDigestMismatch or blob.ErrSizeMismatch.
//   - ManifestWrongDigest, TagWrongDigest: PushManifest and Tag refuse a
//     manifest that does not hash to its descriptor's digest, wrapping
//     blob.ErrDigestMismatch; after Tag's refusal no tag exists.
//   - Cancelled, ReaderFails: a blob whose context is cancelled part way
//     (its reader, bound to the context as a network stream is, failing
//     from then on), or whose reader fails part way, is refused with an
//     error wrapping context.Canceled or the reader's error.
//   - Foreign: a manifest with a foreign (non-distributable) layer that has
//     urls is stored and read back byte for byte without that layer's blob,
//     the layer keeping its media type and urls.
//   - Existing: a blob the target holds is reported by HasBlob (one it
//     does not hold is not), and pushing it again is harmless.
//   - Referrers: a target that implements store.Referrers, given a
//     manifest pushed by digest whose subject is the tagged image, records
//     it as a referrer once however often AddReferrer is called, and lists
//     it among the image's referrers with its artifactType and
//     annotations, as the referrers API would; so does what it wrote,
//     reopened, when that implements store.Referrers. Other targets skip
//     the case.
//
// After every refused or failed write nothing of it is visible: HasBlob
// says the target does not hold the blob, and once a small image has been
// written and the target closed, the source does not serve it either; the
// directory the store writes in holds the same files as that of a store
// given only the small image (no temporary files left behind).
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/store"
)

// Open starts a new, empty store whose files (if it has any) live in dir,
// a directory of its own. It returns a target bound to one tag and a
// function that opens, for reading and bound to the same tag, what the
// target wrote. The suite closes the target before it calls that function,
// so that stores written in one go (archives) are finished first; the
// suite closes the source it returns. The function's error, when the
// target wrote nothing (an archive left unwritten), must wrap
// fs.ErrNotExist.
type Open func(t *testing.T, dir string) (store.Target, Reopen)

// Reopen opens for reading what a closed target wrote.
type Reopen func(t *testing.T) (store.Source, error)

// At is the Open of a store kept at one path, name inside the suite's
// directory (a directory store, an archive): create starts writing it,
// open reads it back.
func At(name string, create func(p string) (store.Target, error), open func(p string) (store.Source, error)) Open {
	return func(t *testing.T, dir string) (store.Target, Reopen) {
		p := filepath.Join(dir, name)
		tg, err := create(p)
		if err != nil {
			t.Fatalf("create %s: %v", p, err)
		}
		return tg, func(*testing.T) (store.Source, error) { return open(p) }
	}
}

// Case names, as Options.Gaps takes them.
const (
	ReadBack            = "ReadBack"
	Index               = "Index"
	BlobWrongDigest     = "BlobWrongDigest"
	BlobTooShort        = "BlobTooShort"
	BlobTooLong         = "BlobTooLong"
	ManifestWrongDigest = "ManifestWrongDigest"
	TagWrongDigest      = "TagWrongDigest"
	Cancelled           = "Cancelled"
	ReaderFails         = "ReaderFails"
	Foreign             = "Foreign"
	Existing            = "Existing"
	Referrers           = "Referrers"
)

// Options declares what a store is known not to do. Capabilities a store
// lacks by design it declares itself, through the optional interfaces of
// package store (a store.ImageOnly target is checked to refuse an index).
type Options struct {
	// Gaps are cases the store is known to fail, by case name, each with
	// why and what would fix it. A gap is skipped with its reason, never
	// silently. Every gap is a bug to fix: keep the list short.
	Gaps map[string]string
}

// Run runs the contract against the store open starts, one subtest per
// case, each on a new store.
func Run(t *testing.T, open Open, o Options) {
	cases := []testCase{
		{ReadBack, readBack},
		{Index, index},
		{BlobWrongDigest, func(t *testing.T, s *suite) { badBlob(t, s, wrongDigest, blob.ErrDigestMismatch) }},
		{BlobTooShort, func(t *testing.T, s *suite) { badBlob(t, s, tooShort, blob.ErrSizeMismatch) }},
		{BlobTooLong, func(t *testing.T, s *suite) { badBlob(t, s, tooLong, blob.ErrSizeMismatch) }},
		{ManifestWrongDigest, manifestWrongDigest},
		{TagWrongDigest, tagWrongDigest},
		{Cancelled, cancelled},
		{ReaderFails, readerFails},
		{Foreign, foreignLayer},
		{Existing, existing},
		{Referrers, referrers},
	}
	for name := range o.Gaps {
		if !slices.ContainsFunc(cases, func(c testCase) bool { return c.name == name }) {
			t.Errorf("Options.Gaps names no case: %q", name)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if why, ok := o.Gaps[c.name]; ok {
				t.Skipf("known gap: %s", why)
			}
			c.run(t, newSuite(t, open))
		})
	}
}

type testCase struct {
	name string
	run  func(t *testing.T, s *suite)
}

// suite is one case's store.
type suite struct {
	open   Open
	dir    string
	target store.Target
	reopen Reopen
	closed bool
}

func newSuite(t *testing.T, open Open) *suite {
	dir := t.TempDir()
	tg, reopen := open(t, dir)
	s := &suite{open: open, dir: dir, target: tg, reopen: reopen}
	t.Cleanup(func() {
		if !s.closed {
			s.target.Close()
		}
	})
	return s
}

// source closes the target and opens what it wrote; it fails the test if
// that cannot be opened.
func (s *suite) source(t *testing.T) store.Source {
	t.Helper()
	src, err := s.trySource(t)
	if err != nil {
		t.Fatalf("open what was written: %v", err)
	}
	return src
}

func (s *suite) trySource(t *testing.T) (store.Source, error) {
	t.Helper()
	if !s.closed {
		s.closed = true
		if err := s.target.Close(); err != nil {
			t.Fatalf("close the target: %v", err)
		}
	}
	src, err := s.reopen(t)
	if err == nil {
		t.Cleanup(func() { src.Close() })
	}
	return src, err
}

// image is what the cases write: a manifest, its config and its layers.
type image struct {
	manifest v1.Descriptor
	raw      []byte
	config   v1.Descriptor
	cfgRaw   []byte
	layers   []v1.Descriptor
	layerRaw [][]byte
}

func newImage(t *testing.T, layers int64) image {
	t.Helper()
	img, err := random.Image(1024, layers)
	if err != nil {
		t.Fatal(err)
	}
	return imageOf(t, img)
}

func imageOf(t *testing.T, img v1.Image) image {
	t.Helper()
	var im image
	var err error
	if im.raw, err = img.RawManifest(); err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	im.manifest = blob.DescriptorOf(im.raw, mt)
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.cfgRaw, err = img.RawConfigFile(); err != nil {
		t.Fatal(err)
	}
	im.config = m.Config
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		im.layers = append(im.layers, m.Layers[i])
		im.layerRaw = append(im.layerRaw, b)
	}
	return im
}

// pushBlobs writes the config and the layers.
func (s *suite) pushBlobs(t *testing.T, im image) {
	t.Helper()
	ctx := context.Background()
	if err := s.target.PushBlob(ctx, im.config, bytes.NewReader(im.cfgRaw)); err != nil {
		t.Fatalf("push config: %v", err)
	}
	for i, l := range im.layers {
		if err := s.target.PushBlob(ctx, l, bytes.NewReader(im.layerRaw[i])); err != nil {
			t.Fatalf("push layer %d: %v", i, err)
		}
	}
}

// write writes the image and tags it.
func (s *suite) write(t *testing.T, im image) {
	t.Helper()
	s.pushBlobs(t, im)
	if err := s.target.Tag(context.Background(), im.manifest, im.raw); err != nil {
		t.Fatalf("tag: %v", err)
	}
}

// checkResolves checks the source's tag names want.
func checkResolves(t *testing.T, src store.Source, want v1.Descriptor) {
	t.Helper()
	got, err := src.Resolve(context.Background())
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	if got.Digest != want.Digest || got.Size != want.Size || got.MediaType != want.MediaType {
		t.Errorf("the tag resolves to %s %s (%d bytes), want %s %s (%d bytes)",
			got.MediaType, got.Digest, got.Size, want.MediaType, want.Digest, want.Size)
	}
}

func checkManifest(t *testing.T, src store.Source, desc v1.Descriptor, want []byte) {
	t.Helper()
	got, err := src.FetchManifest(context.Background(), desc)
	if err != nil {
		t.Fatalf("fetch manifest %s: %v", desc.Digest, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("manifest %s reads back as %q, want %q", desc.Digest, got, want)
	}
}

func checkBlob(t *testing.T, src store.Source, desc v1.Descriptor, want []byte) {
	t.Helper()
	rc, err := src.FetchBlob(context.Background(), desc)
	if err != nil {
		t.Fatalf("fetch blob %s: %v", desc.Digest, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read blob %s: %v", desc.Digest, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("blob %s reads back as %d other bytes, want %d", desc.Digest, len(got), len(want))
	}
}

// checkImage checks the source holds im, manifest, config and layers.
func checkImage(t *testing.T, src store.Source, im image) {
	t.Helper()
	checkManifest(t, src, im.manifest, im.raw)
	checkBlob(t, src, im.config, im.cfgRaw)
	for i, l := range im.layers {
		checkBlob(t, src, l, im.layerRaw[i])
	}
}

func readBack(t *testing.T, s *suite) {
	im := newImage(t, 2)
	s.write(t, im)
	for _, d := range append([]v1.Descriptor{im.config}, im.layers...) {
		if has, err := s.target.HasBlob(context.Background(), d); err != nil || !has {
			t.Errorf("HasBlob(%s) after writing it = %v, %v", d.Digest, has, err)
		}
	}
	src := s.source(t)
	checkResolves(t, src, im.manifest)
	checkImage(t, src, im)
}

func index(t *testing.T, s *suite) {
	ctx := context.Background()
	a, b := newImage(t, 1), newImage(t, 1)
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.DockerManifestList}
	for _, im := range []image{a, b} {
		d := im.manifest
		d.Platform = &v1.Platform{OS: "linux", Architecture: "amd64"}
		idx.Manifests = append(idx.Manifests, d)
	}
	raw, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	desc := blob.DescriptorOf(raw, types.DockerManifestList)
	for _, im := range []image{a, b} {
		s.pushBlobs(t, im)
		if err := s.target.PushManifest(ctx, im.manifest, im.raw); err != nil {
			t.Fatalf("push manifest: %v", err)
		}
	}
	err = s.target.Tag(ctx, desc, raw)
	if _, ok := s.target.(store.ImageOnly); ok {
		// Declared by the store: it holds single-platform images only.
		if err == nil {
			t.Fatal("a store.ImageOnly target tagged an index")
		}
		t.Logf("the target implements store.ImageOnly and refuses an index: %v", err)
		return
	}
	if err != nil {
		t.Fatalf("tag the index: %v", err)
	}
	src := s.source(t)
	checkResolves(t, src, desc)
	checkManifest(t, src, desc, raw)
	checkImage(t, src, a)
	checkImage(t, src, b)
}

// A badness turns a blob's bytes into bytes that do not match its
// descriptor.
type badness func(b []byte) []byte

func wrongDigest(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)/2] ^= 0xff
	return c
}

func tooShort(b []byte) []byte { return b[:len(b)-1] }

func tooLong(b []byte) []byte { return append(bytes.Clone(b), 'x') }

func badBlob(t *testing.T, s *suite, bad badness, sentinel error) {
	im := newImage(t, 1)
	d, raw := im.layers[0], im.layerRaw[0]
	err := s.target.PushBlob(context.Background(), d, bytes.NewReader(bad(raw)))
	if !errors.Is(err, sentinel) {
		t.Errorf("PushBlob of bytes that are not the descriptor's: %v, want an error wrapping %v", err, sentinel)
	}
	s.checkNothingOf(t, []v1.Descriptor{d}, nil)
}

// checkNothingOf checks a failed write left nothing: the target does not
// hold the blobs, and once a small image is written the source serves
// neither them nor the manifests, and the directory holds what a store
// given only that image (and the blobs of pushed, written before the
// failure) holds.
func (s *suite) checkNothingOf(t *testing.T, blobs, manifests []v1.Descriptor, pushed ...image) {
	t.Helper()
	ctx := context.Background()
	for _, d := range blobs {
		if has, err := s.target.HasBlob(ctx, d); err != nil || has {
			t.Errorf("after the failed write HasBlob(%s) = %v, %v; want false", d.Digest, has, err)
		}
	}
	witness := newImage(t, 1)
	s.write(t, witness)
	src := s.source(t)
	checkResolves(t, src, witness.manifest)
	for _, d := range blobs {
		rc, err := src.FetchBlob(ctx, d)
		if err == nil {
			rc.Close()
		}
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after the failed write FetchBlob(%s) = %v, want an error wrapping store.ErrNotFound", d.Digest, err)
		}
	}
	for _, d := range manifests {
		if _, err := src.FetchManifest(ctx, d); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after the failed write FetchManifest(%s) = %v, want an error wrapping store.ErrNotFound", d.Digest, err)
		}
	}
	// The same image in a fresh store: the same files.
	clean := t.TempDir()
	tg, reopen := s.open(t, clean)
	other := &suite{open: s.open, dir: clean, target: tg, reopen: reopen}
	for _, im := range pushed {
		other.pushBlobs(t, im)
	}
	other.write(t, witness)
	other.source(t)
	got, want := files(t, s.dir), files(t, clean)
	if !slices.Equal(got, want) {
		t.Errorf("after the failed write the store's directory holds\n\t%s\nwhere the same image alone gives\n\t%s",
			strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// files lists the regular files under dir, slash-separated and relative.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	return names
}

// otherDigest is a digest that names none of the suite's content.
func otherDigest(raw []byte) v1.Hash {
	sum := sha256.Sum256(append(bytes.Clone(raw), " (not these bytes)"...))
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// pushWrongManifest writes an image's blobs, then its manifest through
// push under a digest the bytes do not hash to, which push must refuse.
func pushWrongManifest(t *testing.T, s *suite, what string, push func(context.Context, v1.Descriptor, []byte) error) (image, v1.Descriptor) {
	t.Helper()
	im := newImage(t, 1)
	s.pushBlobs(t, im)
	d := im.manifest
	d.Digest = otherDigest(im.raw)
	if err := push(context.Background(), d, im.raw); !errors.Is(err, blob.ErrDigestMismatch) {
		t.Errorf("%s of bytes that do not hash to the digest: %v, want an error wrapping blob.ErrDigestMismatch", what, err)
	}
	return im, d
}

func manifestWrongDigest(t *testing.T, s *suite) {
	im, d := pushWrongManifest(t, s, "PushManifest", s.target.PushManifest)
	s.checkNothingOf(t, nil, []v1.Descriptor{d}, im)
}

func tagWrongDigest(t *testing.T, s *suite) {
	pushWrongManifest(t, s, "Tag", s.target.Tag)
	// No tag: nothing to open, or a tag that does not resolve.
	src, err := s.trySource(t)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		t.Fatalf("open what was written: %v", err)
	}
	if got, err := src.Resolve(context.Background()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after the refused Tag the tag resolves to %v, %v; want an error wrapping store.ErrNotFound", got.Digest, err)
	}
}

// failingReader yields half of b, then calls fail and returns its error.
type failingReader struct {
	b    []byte
	half int
	n    int
	fail func() error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n >= r.half {
		return 0, r.fail()
	}
	n := copy(p[:min(len(p), r.half-r.n)], r.b[r.n:])
	r.n += n
	return n, nil
}

// cancelled: the context is cancelled half way through the blob, and the
// reader, bound to it as a network stream is, fails from then on.
func cancelled(t *testing.T, s *suite) {
	im := newImage(t, 1)
	d, raw := im.layers[0], im.layerRaw[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &failingReader{b: raw, half: len(raw) / 2, fail: func() error { cancel(); return ctx.Err() }}
	err := s.target.PushBlob(ctx, d, r)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("PushBlob cancelled half way: %v, want an error wrapping context.Canceled", err)
	}
	s.checkNothingOf(t, []v1.Descriptor{d}, nil)
}

// errSource is the failing reader's error.
var errSource = errors.New("storetest: the source failed")

func readerFails(t *testing.T, s *suite) {
	im := newImage(t, 1)
	d, raw := im.layers[0], im.layerRaw[0]
	r := &failingReader{b: raw, half: len(raw) / 2, fail: func() error { return errSource }}
	err := s.target.PushBlob(context.Background(), d, r)
	if !errors.Is(err, errSource) {
		t.Errorf("PushBlob from a reader that fails half way: %v, want an error wrapping the reader's", err)
	}
	s.checkNothingOf(t, []v1.Descriptor{d}, nil)
}

// foreignLayer writes an image whose second layer is a Windows foreign
// layer with urls, without its blob.
func foreignLayer(t *testing.T, s *suite) {
	ctx := context.Background()
	base := newImage(t, 1)
	cfg, err := v1.ParseConfigFile(bytes.NewReader(base.cfgRaw))
	if err != nil {
		t.Fatal(err)
	}
	foreignDiffID := otherDigest([]byte("foreign diff id"))
	foreign := v1.Descriptor{
		MediaType: types.DockerForeignLayer,
		Digest:    otherDigest([]byte("foreign layer")),
		Size:      1 << 20,
		URLs:      []string{"https://foreign.example/layers/" + foreignDiffID.Hex},
	}
	cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, foreignDiffID)
	cfg.OS = "windows"
	cfgRaw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(base.raw))
	if err != nil {
		t.Fatal(err)
	}
	m.Config = blob.DescriptorOf(cfgRaw, m.Config.MediaType)
	m.Layers = append(m.Layers, foreign)
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	im := image{
		manifest: blob.DescriptorOf(raw, m.MediaType), raw: raw,
		config: m.Config, cfgRaw: cfgRaw,
		layers: base.layers, layerRaw: base.layerRaw,
	}
	s.write(t, im)
	src := s.source(t)
	checkResolves(t, src, im.manifest)
	checkImage(t, src, im)
	got, err := src.FetchManifest(ctx, im.manifest)
	if err != nil {
		t.Fatal(err)
	}
	gm, err := v1.ParseManifest(bytes.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	if l := gm.Layers[len(gm.Layers)-1]; l.MediaType != foreign.MediaType || !slices.Equal(l.URLs, foreign.URLs) {
		t.Errorf("the foreign layer reads back as %s %v, want %s %v", l.MediaType, l.URLs, foreign.MediaType, foreign.URLs)
	}
}

func existing(t *testing.T, s *suite) {
	ctx := context.Background()
	im := newImage(t, 1)
	d, raw := im.layers[0], im.layerRaw[0]
	if has, err := s.target.HasBlob(ctx, d); err != nil || has {
		t.Errorf("HasBlob before the push = %v, %v; want false", has, err)
	}
	s.pushBlobs(t, im)
	if has, err := s.target.HasBlob(ctx, d); err != nil || !has {
		t.Errorf("HasBlob after the push = %v, %v; want true", has, err)
	}
	if err := s.target.PushBlob(ctx, d, bytes.NewReader(raw)); err != nil {
		t.Errorf("pushing a blob the target holds: %v", err)
	}
	if err := s.target.Tag(ctx, im.manifest, im.raw); err != nil {
		t.Fatalf("tag: %v", err)
	}
	src := s.source(t)
	checkResolves(t, src, im.manifest)
	checkImage(t, src, im)
}

func referrers(t *testing.T, s *suite) {
	ctx := context.Background()
	rt, ok := s.target.(store.Referrers)
	if !ok {
		t.Skip("the target does not implement store.Referrers")
	}
	im := newImage(t, 1)
	s.write(t, im)
	const artifactType = "application/vnd.example.signature"
	empty := blob.DescriptorOf([]byte("{}"), types.OCIEmptyJSON)
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: artifactType, Config: empty,
		Layers: []v1.Descriptor{empty}, Subject: &v1.Descriptor{MediaType: im.manifest.MediaType, Digest: im.manifest.Digest, Size: im.manifest.Size},
		Annotations: map[string]string{"org.example.signed-by": "storetest"}}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	ref := blob.DescriptorOf(raw, types.OCIManifestSchema1)
	if err := s.target.PushBlob(ctx, empty, bytes.NewReader([]byte("{}"))); err != nil {
		t.Fatalf("push the empty config: %v", err)
	}
	if err := s.target.PushManifest(ctx, ref, raw); err != nil {
		t.Fatalf("push the referrer: %v", err)
	}
	withType := ref
	withType.ArtifactType = artifactType
	for range 2 {
		if err := rt.AddReferrer(ctx, im.manifest, withType); err != nil {
			t.Fatalf("AddReferrer: %v", err)
		}
	}
	check := func(what string, r store.Referrers) {
		t.Helper()
		refs, err := r.Referrers(ctx, im.manifest)
		if err != nil {
			t.Fatalf("%s: Referrers: %v", what, err)
		}
		if len(refs) != 1 || refs[0].Digest != ref.Digest || refs[0].Size != ref.Size || refs[0].MediaType != types.OCIManifestSchema1 ||
			refs[0].ArtifactType != artifactType || refs[0].Annotations["org.example.signed-by"] != "storetest" {
			t.Errorf("%s: Referrers = %+v, want the one referrer %s (%s, annotated)", what, refs, ref.Digest, artifactType)
		}
	}
	check("the target", rt)
	if r, ok := s.source(t).(store.Referrers); ok {
		check("reopened", r)
	}
}
