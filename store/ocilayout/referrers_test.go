package ocilayout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/mediatype"
	"github.com/ferry-dev/ferry/store"
)

// referrerManifest is an OCI image manifest whose subject is subject, with
// artifactType (none when "") and annotations; its config is the empty
// descriptor, or, without artifactType, of media type cfgType.
func referrerManifest(t *testing.T, subject v1.Descriptor, artifactType, cfgType string, ann map[string]string) ([]byte, v1.Descriptor) {
	t.Helper()
	cfg := blob.DescriptorOf([]byte("{}"), types.MediaType(cfgType))
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: artifactType, Config: cfg,
		Layers: []v1.Descriptor{}, Subject: &v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}, Annotations: ann}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return raw, blob.DescriptorOf(raw, types.OCIManifestSchema1)
}

// pushManifest stores raw in the layout at dir by digest, untagged.
func pushManifest(t *testing.T, l *Layout, desc v1.Descriptor, raw []byte) {
	t.Helper()
	if err := l.PushManifest(context.Background(), desc, raw); err != nil {
		t.Fatal(err)
	}
}

// TestReferrersInIndexJSON: AddReferrer lists a referrer as an untagged
// index.json entry carrying its artifactType (a manifest's config media
// type when it has none) and annotations, once however often it is
// called; Referrers returns the referrers of a subject as the referrers
// API would, and none of another; the layout's only image is still the
// image, not one of its referrers.
func TestReferrersInIndexJSON(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	subject := writeImage(t, dir, "v1")
	sigRaw, sig := referrerManifest(t, subject, "application/vnd.example.signature", string(types.OCIEmptyJSON), map[string]string{"org.example.signed-by": "ci"})
	sbomRaw, sbom := referrerManifest(t, subject, "", "application/vnd.example.sbom.config", nil)
	l := Open(dir, "", "")
	pushManifest(t, l, sig, sigRaw)
	pushManifest(t, l, sbom, sbomRaw)
	for range 2 {
		for _, r := range []v1.Descriptor{sig, sbom} {
			if err := l.AddReferrer(ctx, subject, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	idx, err := l.ReadIndex()
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 3 {
		t.Fatalf("index.json lists %d manifests, want the image and two referrers once each: %+v", len(idx.Manifests), idx.Manifests)
	}
	wantSig := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: sig.Digest, Size: sig.Size,
		ArtifactType: "application/vnd.example.signature", Annotations: map[string]string{"org.example.signed-by": "ci"}}
	wantSBOM := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: sbom.Digest, Size: sbom.Size, ArtifactType: "application/vnd.example.sbom.config"}
	for i, want := range []v1.Descriptor{wantSig, wantSBOM} {
		if got := idx.Manifests[i+1]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("index.json entry %d = %+v, want %+v", i+1, got, want)
		}
	}

	// A fresh Layout reads them back from the files.
	got, err := Open(dir, "v1", "").Referrers(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint([]v1.Descriptor{wantSig, wantSBOM}) {
		t.Errorf("Referrers = %+v, want %+v", got, []v1.Descriptor{wantSig, wantSBOM})
	}
	if got, err := l.Referrers(ctx, sig); err != nil || len(got) != 0 {
		t.Errorf("Referrers of the signature = %v, %v; want none", got, err)
	}
	if got, err := Open(filepath.Join(dir, "none"), "", "").Referrers(ctx, subject); err != nil || len(got) != 0 {
		t.Errorf("Referrers in no layout = %v, %v; want none", got, err)
	}
	if d, err := Open(dir, "", "").Resolve(ctx); err != nil || d.Digest != subject.Digest {
		t.Errorf("Resolve of the layout's only image = %v, %v; want %s", d.Digest, err, subject.Digest)
	}
}

// TestReferrersInNestedIndex: a referrer listed only by an index that
// index.json lists (through up to mediatype.MaxIndexDepth indexes) is
// found; one nested deeper is not looked for.
func TestReferrersInNestedIndex(t *testing.T) {
	ctx := context.Background()
	for depth := 1; depth <= mediatype.MaxIndexDepth+1; depth++ {
		dir := t.TempDir()
		subject := writeImage(t, dir, "v1")
		sigRaw, sig := referrerManifest(t, subject, "application/vnd.example.signature", string(types.OCIEmptyJSON), nil)
		l := Open(dir, "nested", "")
		pushManifest(t, l, sig, sigRaw)
		child := sig
		var raw []byte
		for range depth {
			var err error
			if raw, err = json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{child}}); err != nil {
				t.Fatal(err)
			}
			child = blob.DescriptorOf(raw, types.OCIImageIndex)
			pushManifest(t, l, child, raw)
		}
		if err := l.Tag(ctx, child, raw); err != nil {
			t.Fatal(err)
		}
		got, err := l.Referrers(ctx, subject)
		if err != nil {
			t.Fatal(err)
		}
		if depth <= mediatype.MaxIndexDepth && (len(got) != 1 || got[0].Digest != sig.Digest || got[0].ArtifactType != "application/vnd.example.signature") {
			t.Errorf("%d indexes deep: Referrers = %+v, want the signature", depth, got)
		}
		if depth > mediatype.MaxIndexDepth && len(got) != 0 {
			t.Errorf("%d indexes deep: Referrers = %+v, want none", depth, got)
		}
	}
}

// TestAddReferrerRefuses: a manifest the layout does not hold, one whose
// subject is another, and a read-only layout are refused, and index.json
// is left as it was.
func TestAddReferrerRefuses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	subject := writeImage(t, dir, "v1")
	other := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%064x", 1)}, Size: 10}
	sigRaw, sig := referrerManifest(t, subject, "application/vnd.example.signature", string(types.OCIEmptyJSON), nil)
	l := Open(dir, "", "")
	if err := l.AddReferrer(ctx, subject, sig); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AddReferrer of a manifest not stored = %v, want ErrNotFound", err)
	}
	pushManifest(t, l, sig, sigRaw)
	if err := l.AddReferrer(ctx, other, sig); err == nil {
		t.Error("AddReferrer took a referrer of another subject")
	}
	if err := OpenFS("ro", os.DirFS(dir), "", "").AddReferrer(ctx, subject, sig); err == nil {
		t.Error("a read-only layout recorded a referrer")
	}
	if idx, err := l.ReadIndex(); err != nil || len(idx.Manifests) != 1 {
		t.Errorf("index.json after refusals: %+v, %v", idx, err)
	}
}

// TestCloseRemovesLayoutOfReferrersOnly: a layout a Layout created and
// listed referrers in but tagged nothing in (an attach failed before the
// tag) is removed by Close, index.json included; once something is
// tagged, everything stays.
func TestCloseRemovesLayoutOfReferrersOnly(t *testing.T) {
	ctx := context.Background()
	for _, tag := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "layout")
		l := Open(dir, "v1", "")
		raw, subject := testManifest()
		cfg := blob.DescriptorOf([]byte(testConfig), types.OCIConfigJSON)
		if err := l.PushBlob(ctx, cfg, strings.NewReader(testConfig)); err != nil {
			t.Fatal(err)
		}
		pushManifest(t, l, subject, raw)
		sigRaw, sig := referrerManifest(t, subject, "application/vnd.example.signature", string(types.OCIEmptyJSON), nil)
		pushManifest(t, l, sig, sigRaw)
		if err := l.AddReferrer(ctx, subject, sig); err != nil {
			t.Fatal(err)
		}
		if tag {
			if err := l.Tag(ctx, subject, raw); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		_, err := os.Stat(dir)
		if gone := errors.Is(err, os.ErrNotExist); gone == tag {
			t.Errorf("tagged %v: Close removed the layout: %v, want %v (%v)", tag, gone, !tag, err)
		}
		if tag {
			got, err := Open(dir, "v1", "").Referrers(ctx, subject)
			if err != nil || len(got) != 1 {
				t.Errorf("Referrers after Close = %v, %v", got, err)
			}
		}
	}
}

// TestAddReferrerConcurrentLayouts: Layouts of one directory (as a sync
// opens, one per image) adding referrers at once lose none of them.
func TestAddReferrerConcurrentLayouts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	subject := writeImage(t, dir, "v1")
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		raw, desc := referrerManifest(t, subject, "application/vnd.example.signature", string(types.OCIEmptyJSON), map[string]string{"n": fmt.Sprint(i)})
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := Open(dir, fmt.Sprintf("img-%d", i), "")
			if err := l.PushManifest(ctx, desc, raw); err != nil {
				errs <- err
				return
			}
			errs <- l.AddReferrer(ctx, subject, desc)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := Open(dir, "", "").Referrers(ctx, subject)
	if err != nil || len(got) != n {
		t.Errorf("Referrers = %d, %v; want %d", len(got), err, n)
	}
}

// TestResolveNamesTheImages: a layout holding two images (beside a
// referrer) opened with neither tag nor digest fails naming the images
// as they can be opened, not the referrer.
func TestResolveNamesTheImages(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	subject := writeImage(t, dir, "v1", "latest")
	sigRaw, sig := referrerManifest(t, subject, "application/vnd.example.signature", string(types.OCIEmptyJSON), nil)
	l := Open(dir, "", "")
	pushManifest(t, l, sig, sigRaw)
	if err := l.AddReferrer(ctx, subject, sig); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, "", "").Resolve(ctx)
	if err == nil || !strings.Contains(err.Error(), "holds 2 images (:v1, :latest)") || strings.Contains(err.Error(), sig.Digest.String()) {
		t.Errorf("Resolve without a name = %v, want it to name :v1 and :latest only", err)
	}
}

// TestCloseKeepsAReferrerAnotherWriterListed: a Layout that created the
// directory and tagged nothing does not remove an index.json whose
// referrer entry another writer listed before it (its own AddReferrer of
// that referrer found it there).
func TestCloseKeepsAReferrerAnotherWriterListed(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "layout")
	l := Open(dir, "v1", "")
	raw, subject := testManifest()
	pushManifest(t, l, subject, raw)
	sigRaw, sig := referrerManifest(t, subject, "application/vnd.example.signature", string(types.OCIEmptyJSON), nil)
	pushManifest(t, l, sig, sigRaw)
	if err := Open(dir, "", "").AddReferrer(ctx, subject, sig); err != nil { // the other writer
		t.Fatal(err)
	}
	if err := l.AddReferrer(ctx, subject, sig); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := Open(dir, "", "").Referrers(ctx, subject); err != nil || len(got) != 1 {
		t.Errorf("Referrers after Close = %v, %v; want the other writer's entry kept", got, err)
	}
}
