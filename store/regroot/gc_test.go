package regroot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-dev/ferry/internal/regstorage/storedmanifest"
	"github.com/ferry-dev/ferry/store"
)

// testRoot builds a root's content through the Repo API, as an import
// or a push through ferry serve would.
type testRoot struct {
	t    *testing.T
	ctx  context.Context
	root *Root
	dir  string
}

func newTestRoot(t *testing.T) *testRoot {
	t.Helper()
	root, dir := emptyRoot(t)
	return &testRoot{t: t, ctx: context.Background(), root: root, dir: dir}
}

func (r *testRoot) repo(name, tag string) *Repo {
	r.t.Helper()
	p, err := r.root.Repository(r.ctx, name, tag)
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}

func ggDesc(t *testing.T, d ocispec.Descriptor) v1.Descriptor {
	t.Helper()
	h, err := v1.NewHash(d.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	return v1.Descriptor{MediaType: types.MediaType(d.MediaType), Digest: h, Size: d.Size}
}

// blob pushes content into repository name (idempotent).
func (r *testRoot) blob(name, mediaType, content string) ocispec.Descriptor {
	r.t.Helper()
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromString(content), Size: int64(len(content))}
	if err := r.repo(name, "").PushBlob(r.ctx, ggDesc(r.t, d), strings.NewReader(content)); err != nil {
		r.t.Fatal(err)
	}
	return d
}

// image stores an OCI image manifest with a config and layers named by
// their content (pushed first), tagged tag ("" for untagged), and with a
// subject when subject is not nil.
func (r *testRoot) image(name, tag, artifactType string, subject *ocispec.Descriptor, config string, layers ...string) ocispec.Descriptor {
	r.t.Helper()
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: artifactType, Subject: subject}
	m.SchemaVersion = 2
	if config == "" {
		m.Config = r.blob(name, ocispec.MediaTypeEmptyJSON, "{}")
	} else {
		m.Config = r.blob(name, ocispec.MediaTypeImageConfig, config)
	}
	m.Layers = []ocispec.Descriptor{}
	for _, l := range layers {
		m.Layers = append(m.Layers, r.blob(name, ocispec.MediaTypeImageLayer, l))
	}
	return r.manifest(name, tag, m.MediaType, m)
}

// index stores an OCI index of manifests (stored first), tagged tag.
func (r *testRoot) index(name, tag string, manifests ...ocispec.Descriptor) ocispec.Descriptor {
	r.t.Helper()
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: manifests}
	idx.SchemaVersion = 2
	return r.manifest(name, tag, idx.MediaType, idx)
}

func (r *testRoot) manifest(name, tag, mediaType string, m any) ocispec.Descriptor {
	r.t.Helper()
	raw, err := json.Marshal(m)
	if err != nil {
		r.t.Fatal(err)
	}
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	if err := r.repo(name, tag).Tag(r.ctx, ggDesc(r.t, d), raw); err != nil {
		r.t.Fatal(err)
	}
	return d
}

// hasManifest reports whether repository name still has manifest d.
func (r *testRoot) hasManifest(name string, d ocispec.Descriptor) bool {
	r.t.Helper()
	_, err := r.repo(name, "").FetchManifest(r.ctx, ggDesc(r.t, d))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		r.t.Fatalf("manifest %s: %v", d.Digest, err)
	}
	return err == nil
}

// hasBlob reports whether repository name still links blob d and the
// root still holds it.
func (r *testRoot) hasBlob(name string, d ocispec.Descriptor) bool {
	r.t.Helper()
	rc, err := r.repo(name, "").FetchBlob(r.ctx, ggDesc(r.t, d))
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			r.t.Fatalf("blob %s: %v", d.Digest, err)
		}
		return false
	}
	rc.Close()
	return true
}

func TestGCKeepsReferrers(t *testing.T) {
	r := newTestRoot(t)
	const sigType = "application/vnd.example.signature.v1+json"
	// A tagged image, signed; the signature countersigned.
	img := r.image("app", "v1", "", nil, "config-app", "layer-shared", "layer-app")
	sig := r.image("app", "", sigType, &img, "", "signature-of-app")
	sigsig := r.image("app", "", sigType, &sig, "", "signature-of-signature")
	// A tagged index whose untagged platform manifest has an SBOM.
	child := r.image("app", "", "", nil, "config-child", "layer-child")
	idx := r.index("app", "multi", child)
	sbom := r.image("app", "", "application/spdx+json", &child, "", "sbom-of-child")
	// An untagged image nothing keeps, sharing a layer with the tagged
	// one, and its own signature: both go.
	orphan := r.image("app", "", "", nil, "config-orphan", "layer-shared", "layer-orphan")
	orphanSig := r.image("app", "", sigType, &orphan, "", "signature-of-orphan")
	// A repository walked after app uses the SBOM's layer: distribution
	// would drop app's link to it, as nothing had marked it when the walk
	// left app.
	r.image("zz", "t", "", nil, "config-zz", "sbom-of-child")

	kept := []ocispec.Descriptor{img, sig, sigsig, child, idx, sbom}
	keptBlobs := []string{"config-app", "layer-shared", "layer-app", "{}", "signature-of-app",
		"signature-of-signature", "config-child", "layer-child", "sbom-of-child"}
	removed := []ocispec.Descriptor{orphan, orphanSig}
	removedBlobs := []string{"config-orphan", "layer-orphan", "signature-of-orphan"}

	want := map[string]bool{}
	for _, d := range removed {
		want["blob "+d.Digest.String()] = true
		want["manifest "+d.Digest.String()] = true
	}
	for _, c := range removedBlobs {
		want["blob "+digest.FromString(c).String()] = true
		want["layer "+digest.FromString(c).String()] = true
	}
	before := countBlobs(t, r.dir)
	dry, err := r.root.GC(r.ctx, DryRun(true), RemoveUntagged(true))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, b := range dry.Blobs {
		got["blob "+b.Digest] = true
	}
	for _, l := range dry.Links {
		if l.Repository != "app" {
			t.Errorf("link of another repository: %+v", l)
		}
		got[l.Kind+" "+l.Digest] = true
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("dry run would remove\n%v\nwant\n%v", got, want)
	}
	if n := countBlobs(t, r.dir); n != before {
		t.Fatalf("dry run removed %d blobs", before-n)
	}
	for _, d := range append(append([]ocispec.Descriptor{}, kept...), removed...) {
		if !r.hasManifest("app", d) {
			t.Errorf("dry run removed manifest %s", d.Digest)
		}
	}

	real, err := r.root.GC(r.ctx, RemoveUntagged(true))
	if err != nil {
		t.Fatal(err)
	}
	if real.DryRun {
		t.Error("real run reports a dry run")
	}
	real.DryRun = true
	if !reflect.DeepEqual(real, dry) {
		t.Errorf("real run %+v differs from dry run %+v", real, dry)
	}
	if n := countBlobs(t, r.dir); n != before-len(removed)-len(removedBlobs) {
		t.Errorf("%d blobs after gc, want %d", n, before-len(removed)-len(removedBlobs))
	}
	for _, d := range kept {
		if !r.hasManifest("app", d) {
			t.Errorf("manifest %s removed", d.Digest)
		}
	}
	for _, c := range keptBlobs {
		if !r.hasBlob("app", ocispec.Descriptor{Digest: digest.FromString(c), Size: int64(len(c))}) {
			t.Errorf("blob %q removed", c)
		}
	}
	for _, d := range removed {
		if r.hasManifest("app", d) {
			t.Errorf("manifest %s kept", d.Digest)
		}
	}
	rep, err := Fsck(r.ctx, r.dir)
	if err != nil || !rep.OK() {
		t.Fatalf("fsck after gc: %+v, %v", rep, err)
	}
	// Nothing is left to collect.
	again, err := r.root.GC(r.ctx, RemoveUntagged(true))
	if err != nil || len(again.Blobs)+len(again.Links) != 0 {
		t.Errorf("second gc: %+v, %v", again, err)
	}
}

// TestGCAsDistribution checks that on a root without referrers GC
// removes what distribution's storage.MarkAndSweep removes, with and
// without RemoveUntagged.
func TestGCAsDistribution(t *testing.T) {
	r := newTestRoot(t)
	a1 := r.image("a", "t1", "", nil, "config-a1", "layer-common", "layer-a1")
	r.image("a", "t2", "", nil, "config-a2", "layer-a2")
	r.image("a", "", "", nil, "config-a3", "layer-common", "layer-a3")
	child := r.image("b", "", "", nil, "config-b1", "layer-b1")
	r.index("b", "multi", child)
	r.image("b", "", "", nil, "config-b2", "layer-b2", "layer-a2")
	// A manifest tagged in c and untagged in a is kept in both.
	r.image("c", "x", "", nil, "config-a3", "layer-common", "layer-a3")
	r.blob("c", ocispec.MediaTypeImageLayer, "layer-stray")
	// t2 moved on: the manifest it pointed at is untagged, in its history.
	r.manifest("a", "t2", ocispec.MediaTypeImageManifest, mustManifest(t, r, "a", a1))

	for _, untagged := range []bool{false, true} {
		ours, theirs := copyRoot(t, r.dir), copyRoot(t, r.dir)
		o, err := Open(r.ctx, ours)
		if err != nil {
			t.Fatal(err)
		}
		got, err := o.GC(r.ctx, RemoveUntagged(untagged))
		if err != nil {
			t.Fatal(err)
		}
		d, err := newDriver(theirs)
		if err != nil {
			t.Fatal(err)
		}
		rec := &recordingDriver{StorageDriver: d}
		ns, err := storage.NewRegistry(r.ctx, rec, storage.EnableDelete)
		if err != nil {
			t.Fatal(err)
		}
		if err := storage.MarkAndSweep(r.ctx, rec, ns, storage.GCOpts{RemoveUntagged: untagged, Quiet: true}); err != nil {
			t.Fatal(err)
		}
		if want := rec.report(); !reflect.DeepEqual(got, want) {
			t.Errorf("RemoveUntagged(%v): gc removed\n%+v\ndistribution\n%+v", untagged, got, want)
		}
		if len(got.Blobs) == 0 {
			t.Errorf("RemoveUntagged(%v): nothing removed", untagged)
		}
	}
}

// mustManifest returns the bytes of manifest d as a JSON value.
func mustManifest(t *testing.T, r *testRoot, name string, d ocispec.Descriptor) json.RawMessage {
	t.Helper()
	raw, err := r.repo(name, "").FetchManifest(r.ctx, ggDesc(t, d))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// copyRoot copies the root at dir to a new directory and returns it.
func copyRoot(t *testing.T, dir string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "root")
	if err := os.CopyFS(dst, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// countingDriver counts the reads of tags' current links.
type countingDriver struct {
	storagedriver.StorageDriver
	mu       sync.Mutex
	tagReads map[string]int
}

func (d *countingDriver) GetContent(ctx context.Context, p string) ([]byte, error) {
	if strings.Contains(p, "/_manifests/tags/") && strings.HasSuffix(p, "/current/link") {
		d.mu.Lock()
		d.tagReads[p]++
		d.mu.Unlock()
	}
	return d.StorageDriver.GetContent(ctx, p)
}

func TestGCReadsEachTagOnce(t *testing.T) {
	r := newTestRoot(t)
	for i := range 3 {
		r.image("app", fmt.Sprintf("t%d", i), "", nil, fmt.Sprintf("config-tagged-%d", i))
	}
	for i := range 5 {
		r.image("app", "", "", nil, fmt.Sprintf("config-untagged-%d", i))
	}
	fsd, err := newDriver(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	d := &countingDriver{StorageDriver: fsd, tagReads: map[string]int{}}
	root, err := OpenDriver(r.ctx, "counted", d)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := root.GC(r.ctx, RemoveUntagged(true), DryRun(true))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(filterKind(rep.Links, "manifest")); n != 5 {
		t.Errorf("%d untagged manifests would go, want 5: %+v", n, rep.Links)
	}
	if len(d.tagReads) != 3 {
		t.Errorf("tags read: %v, want the 3 tags", d.tagReads)
	}
	for p, n := range d.tagReads {
		if n != 1 {
			t.Errorf("%s read %d times, want once", p, n)
		}
	}
}

func filterKind(links []RemovedLink, kind string) []RemovedLink {
	var out []RemovedLink
	for _, l := range links {
		if l.Kind == kind {
			out = append(out, l)
		}
	}
	return out
}

// An untagged manifest larger than distribution's manifest limit (written
// offline, or by an older registry) is no referrer: GC removes it as
// distribution does, rather than failing to read its subject.
func TestGCRemovesALargeUntaggedManifest(t *testing.T) {
	r := newTestRoot(t)
	tagged := r.image("app", "v1", "", nil, "config-app", "layer-app")
	m := ocispec.Manifest{
		MediaType:   ocispec.MediaTypeImageManifest,
		Config:      r.blob("app", ocispec.MediaTypeImageConfig, "config-large"),
		Layers:      []ocispec.Descriptor{},
		Subject:     &tagged,
		Annotations: map[string]string{"padding": strings.Repeat("x", storedmanifest.MaxSize)},
	}
	m.SchemaVersion = 2
	large := r.manifest("app", "", m.MediaType, m)
	if large.Size <= storedmanifest.MaxSize {
		t.Fatalf("manifest of %d bytes is not larger than the limit", large.Size)
	}
	rep, err := r.root.GC(r.ctx, RemoveUntagged(true))
	if err != nil {
		t.Fatal(err)
	}
	if r.hasManifest("app", large) {
		t.Errorf("large untagged manifest kept: %+v", rep)
	}
	if !r.hasManifest("app", tagged) {
		t.Errorf("tagged manifest removed: %+v", rep)
	}
}

// GC of a new root removes nothing, and a dry run writes nothing at all.
func TestGCOfANewRootWritesNothing(t *testing.T) {
	r := newTestRoot(t)
	list := func() []string {
		var paths []string
		err := filepath.WalkDir(r.dir, func(p string, _ fs.DirEntry, err error) error {
			paths = append(paths, p)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return paths
	}
	before := list()
	for _, untagged := range []bool{false, true} {
		rep, err := r.root.GC(r.ctx, DryRun(true), RemoveUntagged(untagged))
		if err != nil || len(rep.Blobs) != 0 || len(rep.Links) != 0 {
			t.Fatalf("dry run on a new root: %+v, %v", rep, err)
		}
		if after := list(); !reflect.DeepEqual(after, before) {
			t.Fatalf("dry run wrote to the root: %v, was %v", after, before)
		}
	}
	if rep, err := r.root.GC(r.ctx, RemoveUntagged(true)); err != nil || len(rep.Blobs) != 0 {
		t.Fatalf("gc of a new root: %+v, %v", rep, err)
	}
	mem, err := OpenDriver(r.ctx, "memory", inmemory.New())
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := mem.GC(r.ctx, RemoveUntagged(true)); err != nil || len(rep.Blobs) != 0 {
		t.Fatalf("gc of an empty in-memory root: %+v, %v", rep, err)
	}
}
