package regroot

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/internal/regstorage/rootlock"
	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/registry"
	"github.com/ferry-dev/ferry/transfer"
)

// importFixture copies the fixture's image repo:tag into a new root as
// name:tag with the foreign layers kept, and returns the root.
func importFixture(t *testing.T, e *fixture.Env, tag, dstName, dstTag string) (*Root, string) {
	t.Helper()
	root, dir := emptyRoot(t)
	copyInto(t, root, e, tag, dstName, dstTag)
	return root, dir
}

// emptyRoot starts a root in a new directory and returns it and the
// directory.
func emptyRoot(t *testing.T) (*Root, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "root")
	root, err := Open(context.Background(), dir, WithCreate())
	if err != nil {
		t.Fatal(err)
	}
	return root, dir
}

func copyInto(t *testing.T, root *Root, e *fixture.Env, tag, dstName, dstTag string) *transfer.Result {
	t.Helper()
	ctx := context.Background()
	ref, err := name.ParseReference(e.Reg.Ref(fixture.Repo, tag))
	if err != nil {
		t.Fatal(err)
	}
	src, err := registry.Open(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := root.Repository(ctx, dstName, dstTag)
	if err != nil {
		t.Fatal(err)
	}
	res, err := transfer.Copy(ctx, src, dst)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	return res
}

func TestImportReadBack(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	root, _ := importFixture(t, e, fixture.IndexTag, "mirror/servercore", "ltsc")
	ctx := context.Background()
	repo, err := root.Repository(ctx, "mirror/servercore", "ltsc")
	if err != nil {
		t.Fatal(err)
	}
	desc, err := repo.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != e.Index {
		t.Errorf("digest %s, want %s", desc.Digest, e.Index)
	}
	for _, d := range e.Blobs {
		rc, err := repo.FetchBlob(ctx, v1.Descriptor{Digest: d})
		if err != nil {
			t.Fatalf("blob %s: %v", d, err)
		}
		got, _, err := v1.SHA256(rc)
		rc.Close()
		if err != nil || got != d {
			t.Errorf("blob %s reads back as %s (%v)", d, got, err)
		}
	}
	// Foreign layers were kept: not in the root.
	if ok, _ := repo.HasBlob(ctx, v1.Descriptor{Digest: e.Foreign[0]}); ok {
		t.Errorf("foreign blob %s imported with keep", e.Foreign[0])
	}
	if _, err := repo.FetchBlob(ctx, v1.Descriptor{Digest: e.Foreign[0]}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing blob: %v, want ErrNotFound", err)
	}
	tags, err := repo.Tags(ctx)
	if err != nil || len(tags) != 1 || tags[0] != "ltsc" {
		t.Errorf("tags %v, %v", tags, err)
	}
	// A second import of the same image transfers nothing.
	if res := copyInto(t, root, e, fixture.IndexTag, "mirror/servercore", "ltsc"); res.BlobsCopied != 0 {
		t.Errorf("rerun copied %d blobs", res.BlobsCopied)
	}
}

func TestPushBlobRefusesWrongDigest(t *testing.T) {
	ctx := context.Background()
	root, err := Open(ctx, filepath.Join(t.TempDir(), "r"), WithCreate())
	if err != nil {
		t.Fatal(err)
	}
	repo, err := root.Repository(ctx, "a/b", "t")
	if err != nil {
		t.Fatal(err)
	}
	d, _, _ := v1.SHA256(strings.NewReader("right"))
	err = repo.PushBlob(ctx, v1.Descriptor{Digest: d, Size: 5}, strings.NewReader("wrong"))
	if err == nil {
		t.Fatal("a blob with the wrong content was accepted")
	}
	if ok, _ := repo.HasBlob(ctx, v1.Descriptor{Digest: d, Size: 5}); ok {
		t.Error("the refused blob is present")
	}
	if err := repo.PushBlob(ctx, v1.Descriptor{Digest: d, Size: 5}, strings.NewReader("right")); err != nil {
		t.Fatal(err)
	}
	rep, err := Fsck(ctx, root.Dir())
	if err != nil || !rep.OK() || rep.Blobs != 1 {
		t.Errorf("fsck after a refused and a good push: %+v, %v", rep, err)
	}
}

func TestFsckFindsCorruptionAndMissingLinks(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	_, dir := importFixture(t, e, fixture.IndexTag, "mirror/servercore", "ltsc")
	ctx := context.Background()
	rep, err := Fsck(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("fresh import: problems %+v", rep.Problems)
	}
	// 2 manifests + index + 2 configs + 2 layers.
	if rep.Blobs != 7 || rep.Tags != 1 || rep.Repositories != 1 {
		t.Errorf("counts %+v", rep)
	}
	data := filepath.Join(dir, filepath.FromSlash(DataDir))
	blob := filepath.Join(data, "blobs", "sha256", e.Blobs[0].Hex[:2], e.Blobs[0].Hex, "data")
	if err := os.Truncate(blob, 10); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(data, "repositories", "mirror", "servercore", "_layers", "sha256", e.Configs[1].Hex, "link")
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	rep, err = Fsck(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	var sawBlob, sawLink bool
	for _, p := range rep.Problems {
		sawBlob = sawBlob || (p.Digest == e.Blobs[0].String() && strings.Contains(p.What, "truncated"))
		sawLink = sawLink || strings.HasSuffix(p.Path, e.Configs[1].Hex+"/link")
	}
	if !sawBlob || !sawLink || len(rep.Problems) != 2 {
		t.Errorf("problems %+v: want the truncated blob and the missing link", rep.Problems)
	}
}

func TestOpenRefusesNonRoots(t *testing.T) {
	ctx := context.Background()
	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := Open(ctx, missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing root: %v", err)
	}
	if _, err := Fsck(ctx, missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("fsck of a missing root: %v", err)
	}
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, other, WithCreate()); !errors.Is(err, ErrNotRoot) {
		t.Errorf("non-empty non-root: %v", err)
	}
	if _, err := Fsck(ctx, other); !errors.Is(err, ErrNotRoot) {
		t.Errorf("fsck of a non-root: %v", err)
	}
}

func TestParseName(t *testing.T) {
	for in, want := range map[string][2]string{
		"a/b":        {"a/b", "latest"},
		"a/b:v1":     {"a/b", "v1"},
		"app:1.0-rc": {"app", "1.0-rc"},
	} {
		n, tag, err := ParseName(in)
		if err != nil || n != want[0] || tag != want[1] {
			t.Errorf("ParseName(%q) = %q, %q, %v", in, n, tag, err)
		}
	}
	for _, in := range []string{"", "Upper/case", "a/b@sha256:00", "localhost:5000/a", "a/b:bad tag", "a//b"} {
		if _, _, err := ParseName(in); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ParseName(%q): %v, want ErrInvalidName", in, err)
		}
	}
}

func TestGCRemovesWhatADeletedTagLeft(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	root, dir := importFixture(t, e, fixture.IndexTag, "mirror/servercore", "ltsc")
	ctx := context.Background()
	// The second platform alone under another repository: it shares
	// nothing with the first platform but is kept by its own tag there.
	single, err := root.Repository(ctx, "single", "ltsc2019")
	if err != nil {
		t.Fatal(err)
	}
	copyInto(t, root, e, fixture.SingleTag, "single", "ltsc2019")
	idx, err := root.Repository(ctx, "mirror/servercore", "ltsc")
	if err != nil {
		t.Fatal(err)
	}
	if err := idx.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	before := countBlobs(t, dir)
	// Without --delete-untagged only the index goes: its platform
	// manifests stay as untagged revisions.
	dry, err := root.GC(ctx, DryRun(true))
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.Blobs) != 1 || dry.Blobs[0].Digest != e.Index.String() {
		t.Errorf("dry run would remove %+v, want only the index %s", dry.Blobs, e.Index)
	}
	// With it, the second platform's manifest, config and layer go too;
	// the first platform's stay (tagged in single).
	dry, err = root.GC(ctx, DryRun(true), RemoveUntagged(true))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{e.Index.String(): true, e.Manifests[1].String(): true, e.Configs[1].String(): true, e.Blobs[1].String(): true}
	if len(dry.Blobs) != len(want) {
		t.Errorf("dry run would remove %+v, want %v", dry.Blobs, want)
	}
	for _, b := range dry.Blobs {
		if !want[b.Digest] || b.Size <= 0 {
			t.Errorf("dry run would remove %+v", b)
		}
	}
	if dry.BytesFreed <= 0 || !dry.DryRun {
		t.Errorf("dry run report %+v", dry)
	}
	if n := countBlobs(t, dir); n != before {
		t.Errorf("dry run removed blobs: %d before, %d after", before, n)
	}
	real, err := root.GC(ctx, RemoveUntagged(true))
	if err != nil {
		t.Fatal(err)
	}
	if len(real.Blobs) != len(dry.Blobs) || real.BytesFreed != dry.BytesFreed || len(real.Links) != len(dry.Links) || real.DryRun {
		t.Errorf("real run %+v differs from dry run %+v", real, dry)
	}
	if n := countBlobs(t, dir); n != before-len(want) {
		t.Errorf("%d blobs after gc, want %d", n, before-len(want))
	}
	rep, err := Fsck(ctx, dir)
	if err != nil || !rep.OK() {
		t.Fatalf("fsck after gc: %+v, %v", rep, err)
	}
	desc, err := single.Resolve(ctx)
	if err != nil || desc.Digest != e.SingleID {
		t.Fatalf("remaining image: %v, %v", desc.Digest, err)
	}
	rc, err := single.FetchBlob(ctx, v1.Descriptor{Digest: e.Blobs[0]})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, rc)
	rc.Close()
}

func TestGCOfARootWithoutRepositories(t *testing.T) {
	ctx := context.Background()
	root, err := Open(ctx, filepath.Join(t.TempDir(), "r"), WithCreate())
	if err != nil {
		t.Fatal(err)
	}
	repo, err := root.Repository(ctx, "a", "t")
	if err != nil {
		t.Fatal(err)
	}
	d, _, _ := v1.SHA256(strings.NewReader("orphan"))
	if err := repo.PushBlob(ctx, v1.Descriptor{Digest: d, Size: 6}, strings.NewReader("orphan")); err != nil {
		t.Fatal(err)
	}
	// A root with a blob and no manifest: the blob is garbage.
	rep, err := root.GC(ctx)
	if err != nil || len(rep.Blobs) != 1 || rep.BytesFreed != 6 {
		t.Fatalf("gc: %+v, %v", rep, err)
	}
	empty, err := Open(ctx, filepath.Join(t.TempDir(), "e"), WithCreate())
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := empty.GC(ctx, DryRun(true)); err != nil || len(rep.Blobs) != 0 {
		t.Fatalf("gc of an empty root: %+v, %v", rep, err)
	}
}

func TestLockExcludes(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "root")
	held, err := rootlock.Acquire(dir, "ferry serve")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	_, err = Open(ctx, dir, WithCreate(), WithLock("ferry storage import"))
	if !errors.Is(err, rootlock.ErrLocked) || !strings.Contains(err.Error(), "ferry serve") {
		t.Fatalf("Open under a held lock: %v", err)
	}
	held.Release()
	r, err := Open(ctx, dir, WithCreate(), WithLock("ferry storage import"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

// countBlobs counts the blobs in the root at dir (those Fsck hashes).
func countBlobs(t *testing.T, dir string) int {
	t.Helper()
	rep, err := Fsck(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return rep.Blobs
}

// A manifest known by its sha512 digest can be tagged: the root stores it
// by sha256, the digests are each checked against the bytes in their own
// algorithm, and the tag names the stored revision. Bytes that are not
// the descriptor's are still refused.
func TestTagManifestKnownBySHA512(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	root, dir := importFixture(t, e, fixture.SingleTag, "mirror/servercore", "ltsc2019")
	ctx := context.Background()
	src, err := root.Repository(ctx, "mirror/servercore", "ltsc2019")
	if err != nil {
		t.Fatal(err)
	}
	desc, err := src.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := src.FetchManifest(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha512.Sum512(raw)
	desc512 := v1.Descriptor{MediaType: desc.MediaType, Size: desc.Size,
		Digest: v1.Hash{Algorithm: "sha512", Hex: hex.EncodeToString(sum[:])}}

	dst, err := root.Repository(ctx, "mirror/servercore", "by-sha512")
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.Tag(ctx, desc512, raw); err != nil {
		t.Fatalf("tag a manifest known by sha512: %v", err)
	}
	got, err := dst.Resolve(ctx)
	if err != nil {
		t.Fatalf("resolve the tag written under sha512: %v", err)
	}
	if got.Digest != e.SingleID {
		t.Errorf("tag resolves to %s, want the stored %s", got.Digest, e.SingleID)
	}
	if back, err := dst.FetchManifest(ctx, got); err != nil || !bytes.Equal(back, raw) {
		t.Errorf("read back: %d bytes, %v", len(back), err)
	}
	if err := dst.PushManifest(ctx, desc512, raw); err != nil {
		t.Errorf("push a manifest known by sha512: %v", err)
	}

	wrong := desc512
	wrong.Digest.Hex = strings.Repeat("0", 128)
	if err := dst.Tag(ctx, wrong, raw); !errors.Is(err, blob.ErrDigestMismatch) || !strings.Contains(err.Error(), desc512.Digest.String()) {
		t.Errorf("a sha512 digest that is not the manifest's: %v", err)
	}
	if err := dst.PushManifest(ctx, wrong, raw); !errors.Is(err, blob.ErrDigestMismatch) {
		t.Errorf("push under a sha512 digest that is not the manifest's: %v", err)
	}
	if rep, err := Fsck(ctx, dir); err != nil || !rep.OK() || rep.Tags != 2 {
		t.Errorf("fsck after tagging by sha512: %+v, %v", rep, err)
	}
}

// An index is refused while the manifests it lists are absent, whether it
// is pushed or tagged, with an error naming the missing manifest; nothing
// is tagged.
func TestIndexWithMissingManifestsRefused(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "root")
	root, err := Open(ctx, dir, WithCreate())
	if err != nil {
		t.Fatal(err)
	}
	idx, err := random.Index(64, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, mt := range []types.MediaType{types.OCIImageIndex, types.DockerManifestList} {
		idx := mutate.IndexMediaType(idx, mt)
		raw, err := idx.RawManifest()
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		desc := blob.DescriptorOf(raw, mt)
		repo, err := root.Repository(ctx, "a/b", "t")
		if err != nil {
			t.Fatal(err)
		}
		missing := im.Manifests[0].Digest.String()
		if err := repo.PushManifest(ctx, desc, raw); err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("%s: push without its manifests: %v, want an error naming %s", mt, err, missing)
		}
		if err := repo.Tag(ctx, desc, raw); err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("%s: tag without its manifests: %v, want an error naming %s", mt, err, missing)
		}
		if _, err := repo.Resolve(ctx); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: the refused index is tagged: %v", mt, err)
		}
	}
	if rep, err := Fsck(ctx, dir); err != nil || !rep.OK() {
		t.Errorf("fsck after refused indexes: %+v, %v", rep, err)
	}
}

// A directory a root may not start in is named with what it holds, or
// why it could not be listed.
func TestOpenSaysWhyNoRootStarts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctx, dir, WithCreate())
	if !errors.Is(err, ErrNotRoot) || !strings.Contains(err.Error(), "not a registry storage root (it holds notes.txt)") {
		t.Errorf("non-empty directory: %v", err)
	}
	file := filepath.Join(dir, "notes.txt")
	if _, err := Open(ctx, file, WithCreate()); !errors.Is(err, ErrNotRoot) || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a file: %v", err)
	}
	// The lock file alone is no obstacle.
	empty := t.TempDir()
	if err := os.WriteFile(filepath.Join(empty, rootlock.FileName), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, empty, WithCreate()); err != nil {
		t.Errorf("directory holding only the lock file: %v", err)
	}
}
