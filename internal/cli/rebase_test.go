package cli

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/ferry-dev/ferry/imagemod"
	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

// rebaseEnv is a registry holding servercore "patch A" and "patch B" of
// ltsc2019 (two foreign layers and one ordinary each) and an app built on
// patch A.
type rebaseEnv struct {
	reg          *fixture.Registry
	urls         *fixture.URLServer
	baseA, baseB v1.Image
	app          v1.Image
}

const (
	patchA = "10.0.17763.5830"
	patchB = "10.0.17763.5936"
)

func newRebaseEnv(t *testing.T, ann func(e *rebaseEnv) map[string]string) *rebaseEnv {
	t.Helper()
	e := &rebaseEnv{reg: fixture.NewRegistry(t), urls: fixture.NewURLServer(t)}
	e.baseA = e.urls.WindowsImage(t, fixture.ImageSpec{OSVersion: patchA, ForeignLayers: 2, Layers: 1, Seed: 1})
	e.baseB = e.urls.WindowsImage(t, fixture.ImageSpec{OSVersion: patchB, ForeignLayers: 2, Layers: 1, Seed: 2})
	var a map[string]string
	if ann != nil {
		a = ann(e)
	}
	e.app = appOn(t, e.baseA, 7, a)
	e.reg.Push(t, "windows/servercore", "patch-a", e.baseA)
	e.reg.Push(t, "windows/servercore", "patch-b", e.baseB)
	e.reg.Push(t, "app/web", "1", e.app)
	return e
}

// checkRebased asserts that w is app rebased from baseA onto baseB.
func checkRebased(t *testing.T, w written, app, baseA, baseB v1.Image) {
	t.Helper()
	am, bm := manifestOf(t, app), manifestOf(t, baseB)
	k := len(manifestOf(t, baseA).Layers)
	wantLayers := append(append([]v1.Descriptor{}, bm.Layers...), am.Layers[k:]...)
	if !reflect.DeepEqual(descKeys(w.manifest.Layers), descKeys(wantLayers)) {
		t.Errorf("layers:\n got %+v\nwant %+v", w.manifest.Layers, wantLayers)
	}
	ac, ac0, bc := configFileOf(t, app), configFileOf(t, baseA), configFileOf(t, baseB)
	wantDiff := append(append([]v1.Hash{}, bc.RootFS.DiffIDs...), ac.RootFS.DiffIDs[k:]...)
	if !reflect.DeepEqual(w.cfg.RootFS.DiffIDs, wantDiff) {
		t.Errorf("diff_ids:\n got %v\nwant %v", w.cfg.RootFS.DiffIDs, wantDiff)
	}
	wantHist := append(createdBy(bc.History), createdBy(ac.History[len(ac0.History):])...)
	if got := createdBy(w.cfg.History); !reflect.DeepEqual(got, wantHist) {
		t.Errorf("history:\n got %q\nwant %q", got, wantHist)
	}
	if w.cfg.OSVersion != bc.OSVersion || w.cfg.OS != "windows" || w.cfg.Architecture != "amd64" {
		t.Errorf("platform %s/%s %s, want windows/amd64 %s", w.cfg.OS, w.cfg.Architecture, w.cfg.OSVersion, bc.OSVersion)
	}
	if !reflect.DeepEqual(w.cfg.Config.Labels, ac.Config.Labels) || !reflect.DeepEqual(w.cfg.Config.Env, ac.Config.Env) ||
		!reflect.DeepEqual(w.cfg.Config.Entrypoint, ac.Config.Entrypoint) || !w.cfg.Created.Equal(ac.Created.Time) {
		t.Errorf("config not kept: %+v created %v", w.cfg.Config, w.cfg.Created)
	}
	if d := digestOf(t, baseB); w.manifest.Annotations[imagemod.AnnotationBaseDigest] != d.String() {
		t.Errorf("base digest annotation %q, want %s", w.manifest.Annotations[imagemod.AnnotationBaseDigest], d)
	}
}

func TestRebaseSameRegistryMountsAndValidates(t *testing.T) {
	e := newRebaseEnv(t, nil)
	puts, patches := e.reg.Count("PUT", "/blobs/uploads/"), e.reg.Count("PATCH", "/blobs/uploads/")
	out, stderr, code := run(t, "rebase", e.reg.Ref("app/web", "1"), "--json",
		"--old-base", e.reg.Ref("windows/servercore", "patch-a"),
		"--new-base", e.reg.Ref("windows/servercore", "patch-b"),
		"-t", e.reg.Ref("app/web-b", "1"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res struct {
		Reference string
		Blobs     struct{ BlobsMounted, BlobsCopied, ForeignKept int }
	}
	mustJSON(t, out, &res)
	w := readImage(t, e.reg, "app/web-b", "1")
	checkRebased(t, w, e.app, e.baseA, e.baseB)
	validate(t, e.reg, "app/web-b", w)
	if d, _, _ := v1.SHA256(bytes.NewReader(w.raw)); !strings.HasSuffix(res.Reference, "@"+d.String()) {
		t.Errorf("reference %s, manifest %s", res.Reference, d)
	}
	if w.manifest.Annotations[imagemod.AnnotationBaseName] != e.reg.Ref("windows/servercore", "patch-b") {
		t.Errorf("base name annotation %q", w.manifest.Annotations[imagemod.AnnotationBaseName])
	}
	// Only the config is uploaded: base layer and two app layers mounted,
	// two foreign layers left at their URLs.
	if n := e.reg.Count("PUT", "/blobs/uploads/") - puts; n != 1 {
		t.Errorf("%d blob uploads, want 1 (the config)", n)
	}
	if n := e.reg.Count("PATCH", "/blobs/uploads/") - patches; n != 0 {
		t.Errorf("%d chunked uploads", n)
	}
	if res.Blobs.BlobsMounted != 3 || res.Blobs.BlobsCopied != 0 || res.Blobs.ForeignKept != 2 {
		t.Errorf("blobs %+v, want 3 mounted, 0 copied, 2 foreign kept", res.Blobs)
	}
}

func TestRebaseDryRunWritesNothing(t *testing.T) {
	e := newRebaseEnv(t, nil)
	args := []string{"rebase", e.reg.Ref("app/web", "1"), "--old-base", e.reg.Ref("windows/servercore", "patch-a"),
		"--new-base", e.reg.Ref("windows/servercore", "patch-b"), "-t", e.reg.Ref("app/web", "rebased")}
	dry, stderr, code := run(t, append(args, "--dry-run")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if e.reg.TagExists(t, "app/web", "rebased") {
		t.Fatal("dry run wrote the tag")
	}
	real, stderr, code := run(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// The dry run names what it would write, and says it wrote nothing:
	// not the TARGET@DIGEST line scripts read as written (issue 18 item 16).
	if want := "dry run: would write " + lastLine(real) + "; nothing written"; lastLine(dry) != want {
		t.Errorf("dry run printed %q, want %q", lastLine(dry), want)
	}
	js, _, code := run(t, append(args, "--dry-run", "--json")...)
	if code != 0 || !strings.Contains(js, `"dryRun": true`) || !strings.Contains(js, `"reference": "`+lastLine(real)+`"`) {
		t.Errorf("dry run --json: exit %d, %s", code, js)
	}
}

func TestRebaseRefusals(t *testing.T) {
	e := newRebaseEnv(t, nil)
	other := e.urls.WindowsImage(t, fixture.ImageSpec{OSVersion: patchA, ForeignLayers: 2, Layers: 1, Seed: 9})
	e.reg.Push(t, "windows/other", "x", other)
	linux := mutateOS(t, e.baseB, "linux")
	e.reg.Push(t, "linux/base", "x", linux)
	target := e.reg.Ref("app/out", "t")

	// Wrong old base: layer 0 differs, both digests named.
	_, stderr, code := run(t, "rebase", e.reg.Ref("app/web", "1"), "--old-base", e.reg.Ref("windows/other", "x"),
		"--new-base", e.reg.Ref("windows/servercore", "patch-b"), "-t", target)
	appL, otherL := manifestOf(t, e.app).Layers[0].Digest, manifestOf(t, other).Layers[0].Digest
	if code != 1 || !strings.Contains(stderr, "layer 0 differs") || !strings.Contains(stderr, appL.String()) || !strings.Contains(stderr, otherL.String()) {
		t.Errorf("wrong old base: exit %d: %s", code, stderr)
	}
	// os mismatch.
	_, stderr, code = run(t, "rebase", e.reg.Ref("app/web", "1"), "--old-base", e.reg.Ref("windows/servercore", "patch-a"),
		"--new-base", e.reg.Ref("linux/base", "x"), "-t", target)
	if code != 1 || !strings.Contains(stderr, "linux/amd64") {
		t.Errorf("os mismatch: exit %d: %s", code, stderr)
	}
	// No old base at all.
	_, stderr, code = run(t, "rebase", e.reg.Ref("app/web", "1"), "--new-base", e.reg.Ref("windows/servercore", "patch-b"), "-t", target)
	if code != 1 || !strings.Contains(stderr, imagemod.AnnotationBaseName) {
		t.Errorf("no old base: exit %d: %s", code, stderr)
	}
	// Usage.
	if _, stderr, code = run(t, "rebase", e.reg.Ref("app/web", "1"), "-t", target); code != 2 {
		t.Errorf("no --new-base: exit %d: %s", code, stderr)
	}
	if e.reg.TagExists(t, "app/out", "t") {
		t.Error("a refused rebase wrote the tag")
	}
	if n := e.reg.Count("PUT", "/v2/app/out/"); n != 0 {
		t.Errorf("a refused rebase wrote %d things", n)
	}
}

func mutateOS(t *testing.T, img v1.Image, os string) v1.Image {
	t.Helper()
	cf := configFileOf(t, img).DeepCopy()
	cf.OS, cf.OSVersion = os, ""
	out, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRebaseFromAnnotations(t *testing.T) {
	e := newRebaseEnv(t, func(e *rebaseEnv) map[string]string {
		return map[string]string{
			imagemod.AnnotationBaseName:   e.reg.Ref("windows/servercore", "patch-a"),
			imagemod.AnnotationBaseDigest: digestOf(t, e.baseA).String(),
		}
	})
	// Move the tag patch-a: the digest annotation must win over the tag.
	e.reg.Push(t, "windows/servercore", "patch-a", e.baseB)
	_, stderr, code := run(t, "rebase", e.reg.Ref("app/web", "1"),
		"--new-base", e.reg.Ref("windows/servercore", "patch-b"), "-t", e.reg.Ref("app/web", "rebased"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	w := readImage(t, e.reg, "app/web", "rebased")
	checkRebased(t, w, e.app, e.baseA, e.baseB)
	validate(t, e.reg, "app/web", w)
}

func TestRebaseIndexPerBuild(t *testing.T) {
	reg, urls := fixture.NewRegistry(t), fixture.NewURLServer(t)
	spec := func(v string, seed int64) v1.Image {
		return urls.WindowsImage(t, fixture.ImageSpec{OSVersion: v, ForeignLayers: 2, Layers: 1, Seed: seed})
	}
	a19, a22 := spec(patchA, 1), spec("10.0.20348.2461", 2)
	b19, b22 := spec(patchB, 3), spec("10.0.20348.2527", 4)
	reg.PushIndex(t, "windows/servercore", "a", a19, a22)
	// The new base lists its builds in the other order: entries are
	// matched by build, not by position.
	reg.PushIndex(t, "windows/servercore", "b", b22, b19)
	reg.PushIndex(t, "windows/servercore", "b19", b19)
	app19, app22 := appOn(t, a19, 7, nil), appOn(t, a22, 8, nil)
	reg.PushIndex(t, "app/web", "1", app19, app22)

	_, stderr, code := run(t, "rebase", reg.Ref("app/web", "1"), "--old-base", reg.Ref("windows/servercore", "a"),
		"--new-base", reg.Ref("windows/servercore", "b"), "-t", reg.Ref("app/web", "2"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	raw, _, _ := reg.Manifest(t, "app/web", "2")
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 2 {
		t.Fatalf("%d entries", len(idx.Manifests))
	}
	for i, want := range []struct{ app, oldBase, newBase v1.Image }{{app19, a19, b19}, {app22, a22, b22}} {
		e := idx.Manifests[i]
		w := readImage(t, reg, "app/web", e.Digest.String())
		checkRebased(t, w, want.app, want.oldBase, want.newBase)
		validate(t, reg, "app/web", w)
		if v := configFileOf(t, want.newBase).OSVersion; e.Platform == nil || e.Platform.OSVersion != v {
			t.Errorf("entry %d platform %+v, want os.version %s", i, e.Platform, v)
		}
	}
	// A new base without ltsc2022: the 2022 platform is named.
	_, stderr, code = run(t, "rebase", reg.Ref("app/web", "1"), "--old-base", reg.Ref("windows/servercore", "a"),
		"--new-base", reg.Ref("windows/servercore", "b19"), "-t", reg.Ref("app/web", "3"))
	if code != 1 || !strings.Contains(stderr, "10.0.20348") {
		t.Errorf("missing platform: exit %d: %s", code, stderr)
	}
	if reg.TagExists(t, "app/web", "3") {
		t.Error("a failed index rebase wrote the tag")
	}
}

func TestRebaseAcrossBuildsWarns(t *testing.T) {
	e := newRebaseEnv(t, nil)
	b22 := e.urls.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.20348.2461", ForeignLayers: 2, Layers: 1, Seed: 5})
	e.reg.Push(t, "windows/servercore", "ltsc2022", b22)
	_, stderr, code := run(t, "rebase", e.reg.Ref("app/web", "1"), "--old-base", e.reg.Ref("windows/servercore", "patch-a"),
		"--new-base", e.reg.Ref("windows/servercore", "ltsc2022"), "-t", e.reg.Ref("app/web", "2022"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "warning") || !strings.Contains(stderr, "10.0.17763 to 10.0.20348") {
		t.Errorf("no cross-build warning: %s", stderr)
	}
	checkRebased(t, readImage(t, e.reg, "app/web", "2022"), e.app, e.baseA, b22)
}

func TestRebaseLocalizeToOtherRegistry(t *testing.T) {
	e := newRebaseEnv(t, nil)
	dst := fixture.NewRegistry(t)
	_, stderr, code := run(t, "rebase", e.reg.Ref("app/web", "1"), "--old-base", e.reg.Ref("windows/servercore", "patch-a"),
		"--new-base", e.reg.Ref("windows/servercore", "patch-b"), "-t", dst.Ref("app/web", "1"),
		"--foreign", "localize", "--foreign-allow", allowLoopback)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	w := readImage(t, dst, "app/web", "1")
	validate(t, dst, "app/web", w)
	bm := manifestOf(t, e.baseB)
	for i, l := range w.manifest.Layers {
		if !l.MediaType.IsDistributable() || len(l.URLs) > 0 {
			t.Errorf("layer %d still foreign: %+v", i, l)
		}
		if !dst.BlobDigestOK(t, "app/web", l.Digest) {
			t.Errorf("layer %d (%s) not copied", i, l.Digest)
		}
		if i < len(bm.Layers) && l.Digest != bm.Layers[i].Digest {
			t.Errorf("layer %d is %s, want the new base's %s", i, l.Digest, bm.Layers[i].Digest)
		}
	}
}
