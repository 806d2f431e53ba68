package syncer_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/bundle"
	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/opener"
	"github.com/ferry-dev/ferry/syncer"
	"github.com/ferry-dev/ferry/transfer"
)

// world is a Microsoft-like source registry with Windows-like images in
// several repositories that share one base, and an empty destination.
type world struct {
	src, dst *fixture.Registry
	urls     *fixture.URLServer
	base     v1.Image
	digests  map[string]v1.Hash // "repo:tag" -> digest at the source
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{src: fixture.NewRegistry(t), dst: fixture.NewRegistry(t), urls: fixture.NewURLServer(t), digests: map[string]v1.Hash{}}
	w.base = w.urls.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.17763.5830", ForeignLayers: 1, Layers: 1, Seed: 1})
	other := w.urls.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.20348.2461", ForeignLayers: 1, Layers: 1, Seed: 2})
	w.push(t, "windows/servercore", "ltsc2019", w.base)
	w.push(t, "windows/servercore", "ltsc2022", other)
	w.push(t, "windows/servercore", "unwanted", w.app(t, "unwanted"))
	d, _ := w.src.PushIndex(t, "windows/servercore", "ltsc", w.base, other)
	w.digests["windows/servercore:ltsc"] = d
	for _, tag := range []string{"v1.0.0", "v1.1.0", "v2.0.0"} {
		w.push(t, "app/web", tag, w.app(t, "web "+tag))
	}
	for _, tag := range []string{"1", "2"} {
		w.push(t, "app/api", tag, w.app(t, "api "+tag))
	}
	return w
}

// app is an image on the shared base with one small layer of its own.
func (w *world) app(t *testing.T, content string) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(w.base, static.NewLayer([]byte(content), types.DockerLayer))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func (w *world) push(t *testing.T, repo, tag string, img v1.Image) {
	w.digests[repo+":"+tag] = w.src.Push(t, repo, tag, img)
}

// config is a skopeo sync file for the source registry.
func (w *world) config(t *testing.T, body string) *syncer.Config {
	t.Helper()
	cfg, err := syncer.Parse("sync.yaml", []byte(w.src.Host+":\n  tls-verify: false\n"+body))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) > 0 {
		t.Fatalf("warnings: %v", cfg.Warnings)
	}
	return cfg
}

func (w *world) run(t *testing.T, cfg *syncer.Config, dest string, mod ...func(*syncer.Options)) (*syncer.Report, error) {
	t.Helper()
	return w.runCtx(t, context.Background(), cfg, dest, mod...)
}

func (w *world) runCtx(t *testing.T, ctx context.Context, cfg *syncer.Config, dest string, mod ...func(*syncer.Options)) (*syncer.Report, error) {
	t.Helper()
	op := opener.New(opener.Network{})
	f, err := op.Fetcher([]string{".*"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	inc := transfer.Include
	o := syncer.Options{Opener: op, Jobs: 4, Foreign: &inc, Copy: []transfer.Option{transfer.WithFetcher(f)}}
	for _, m := range mod {
		m(&o)
	}
	return syncer.Run(ctx, cfg, dest, o)
}

// dstBehind is the HOST of a proxy to the destination registry that
// lets intercept answer (returning true) or change a request first.
func (w *world) dstBehind(t *testing.T, intercept func(http.ResponseWriter, *http.Request) bool) string {
	t.Helper()
	target, err := url.Parse(w.dst.URL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if !intercept(rw, r) {
			rp.ServeHTTP(rw, r)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// statuses maps each source reference (without the host) to its status.
func statuses(rep *syncer.Report) map[string]syncer.Status {
	out := map[string]syncer.Status{}
	for _, img := range rep.Images {
		out[img.Source[strings.Index(img.Source, "/")+1:]] = img.Status
	}
	return out
}

const selection = `  images:
    windows/servercore: [ltsc2019, ltsc]
    app/api: []
  images-by-tag-regex:
    app/web: ^v1\.
`

func TestSyncSelectsTagsUnderFullPathsAndDedupes(t *testing.T) {
	w := newWorld(t)
	rep, err := w.run(t, w.config(t, selection), w.dst.Host+"/mirror")
	if err != nil {
		t.Fatalf("sync: %v (%+v)", err, rep)
	}
	want := []string{"windows/servercore:ltsc2019", "windows/servercore:ltsc", "app/api:1", "app/api:2", "app/web:v1.0.0", "app/web:v1.1.0"}
	got := statuses(rep)
	if len(got) != len(want) {
		t.Fatalf("planned %v, want %v", got, want)
	}
	for _, ref := range want {
		if got[ref] != syncer.Copied {
			t.Errorf("%s: %s, want copied", ref, got[ref])
		}
		repo, tag, _ := strings.Cut(ref, ":")
		_, _, d := w.dst.Manifest(t, "mirror/"+repo, tag)
		if d != w.digests[ref] {
			t.Errorf("%s landed as %s, want the source digest %s", ref, d, w.digests[ref])
		}
	}
	for _, ref := range []string{"app/web:v2.0.0", "windows/servercore:unwanted", "windows/servercore:ltsc2022"} {
		repo, tag, _ := strings.Cut(ref, ":")
		if w.dst.TagExists(t, "mirror/"+repo, tag) {
			t.Errorf("%s was not selected but landed", ref)
		}
	}
	// Foreign blobs were included, in every repository that uses them.
	foreign, ordinary := fixture.Layers(t, w.base)
	for _, repo := range []string{"windows/servercore", "app/api", "app/web"} {
		for _, l := range append(foreign, ordinary...) {
			if !w.dst.HasBlob(t, "mirror/"+repo, l.Digest) {
				t.Errorf("mirror/%s lacks base blob %s", repo, l.Digest)
			}
		}
	}
	// Every shared blob came from the source (or its URL) once.
	for _, l := range ordinary {
		if n := w.src.Count("GET", "/blobs/"+l.Digest.String()); n != 1 {
			t.Errorf("shared layer %s fetched %d times from the source, want 1", l.Digest, n)
		}
	}
	for _, l := range foreign {
		if n := w.urls.Requests("/cdn/" + l.Digest.Hex); n != 1 {
			t.Errorf("the foreign base layer %s was downloaded %d times, want 1", l.Digest, n)
		}
	}

	// A second run skips everything and touches no blob.
	uploads, heads, puts0 := w.dst.Count("POST", "/blobs/uploads/"), w.dst.Count("HEAD", "/blobs/"), w.dst.Count("PUT", "")
	rep, err = w.run(t, w.config(t, selection), w.dst.Host+"/mirror")
	if err != nil {
		t.Fatal(err)
	}
	for ref, s := range statuses(rep) {
		if s != syncer.Skipped {
			t.Errorf("rerun: %s %s, want skipped", ref, s)
		}
	}
	if n := w.dst.Count("POST", "/blobs/uploads/") - uploads; n != 0 {
		t.Errorf("rerun started %d uploads, want 0", n)
	}
	if n := w.dst.Count("HEAD", "/blobs/") - heads; n != 0 {
		t.Errorf("rerun checked %d blobs, want 0", n)
	}
	if n := w.dst.Count("PUT", "") - puts0; n != 0 {
		t.Errorf("rerun made %d PUT requests, want 0", n)
	}

	// After one source tag moved, only that image is copied.
	w.push(t, "app/api", "2", w.app(t, "api 2, rebuilt"))
	puts := w.dst.Count("PUT", "/manifests/")
	rep, err = w.run(t, w.config(t, selection), w.dst.Host+"/mirror")
	if err != nil {
		t.Fatal(err)
	}
	for ref, s := range statuses(rep) {
		want := syncer.Skipped
		if ref == "app/api:2" {
			want = syncer.Copied
		}
		if s != want {
			t.Errorf("after a move: %s %s, want %s", ref, s, want)
		}
	}
	if n := w.dst.Count("PUT", "/manifests/") - puts; n != 1 {
		t.Errorf("after a move: %d manifests written, want 1", n)
	}
	if _, _, d := w.dst.Manifest(t, "mirror/app/api", "2"); d != w.digests["app/api:2"] {
		t.Errorf("app/api:2 is %s, want the moved %s", d, w.digests["app/api:2"])
	}
}

// TestSyncRepositoryUnderTagsAndRegex: a repository both listed with
// tags and under images-by-tag-regex (skopeo copies what each selects)
// syncs the union, each tag once.
func TestSyncRepositoryUnderTagsAndRegex(t *testing.T) {
	w := newWorld(t)
	cfg := w.config(t, "  images:\n    app/web: [v2.0.0, v1.0.0]\n  images-by-tag-regex:\n    app/web: ^v1\\.\n")
	rep, err := w.run(t, cfg, w.dst.Host)
	if err != nil {
		t.Fatalf("%v %+v", err, rep)
	}
	var got []string
	for _, img := range rep.Images {
		got = append(got, img.Source[strings.LastIndex(img.Source, ":")+1:]+" "+string(img.Status))
	}
	if strings.Join(got, ", ") != "v2.0.0 copied, v1.0.0 copied, v1.1.0 copied" {
		t.Errorf("synced %v, want the listed tags, then the other one the regex matches", got)
	}
}

func TestSyncMissingTagFailsAloneAndDryRunWritesNothing(t *testing.T) {
	w := newWorld(t)
	cfg := w.config(t, "  images:\n    windows/servercore: [ltsc2019, nosuchtag, ltsc]\n")
	rep, err := w.run(t, cfg, w.dst.Host, func(o *syncer.Options) { o.DryRun = true })
	if err == nil || !errors.Is(err, syncer.ErrImagesFailed) {
		t.Fatalf("dry run: %v, want the missing tag to fail", err)
	}
	if n := w.dst.Count("POST", "") + w.dst.Count("PUT", "") + w.dst.Count("PATCH", ""); n != 0 {
		t.Errorf("dry run made %d writing requests", n)
	}
	if s := statuses(rep); s["windows/servercore:ltsc2019"] != syncer.Copied || s["windows/servercore:nosuchtag"] != syncer.Failed {
		t.Errorf("dry run plan %v", s)
	}

	rep, err = w.run(t, cfg, w.dst.Host)
	if !errors.Is(err, syncer.ErrImagesFailed) {
		t.Fatalf("sync: %v, want ErrImagesFailed", err)
	}
	for _, img := range rep.Images {
		switch {
		case strings.HasSuffix(img.Source, ":nosuchtag"):
			if img.Status != syncer.Failed || !strings.Contains(img.Error, "nosuchtag") {
				t.Errorf("missing tag: %s %q, want failed naming it", img.Status, img.Error)
			}
		case img.Status != syncer.Copied:
			t.Errorf("%s: %s (%s), want copied despite the missing tag", img.Source, img.Status, img.Error)
		}
	}
	if !w.dst.TagExists(t, "windows/servercore", "ltsc") || !w.dst.TagExists(t, "windows/servercore", "ltsc2019") {
		t.Error("the other tags did not land")
	}
	if rep.Totals.Failed != 1 || rep.Totals.Copied != 2 || rep.Totals.Bytes == 0 {
		t.Errorf("totals %+v", rep.Totals)
	}
}

func TestSyncKeepUBR(t *testing.T) {
	w := newWorld(t)
	for i, ubr := range []string{"100", "300", "200"} {
		img := w.urls.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.17763." + ubr, Layers: 1, Seed: int64(10 + i)})
		w.push(t, "windows/nanoserver", "10.0.17763."+ubr, img)
	}
	other := w.urls.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.20348.5", Layers: 1, Seed: 20})
	w.push(t, "windows/nanoserver", "10.0.20348.5", other)
	// An index of three update revisions of one build and one of another.
	var entries []v1.Image
	for i, ubr := range []string{"100", "300", "200"} {
		entries = append(entries, w.urls.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.17763." + ubr, Layers: 1, Seed: int64(10 + i)}))
	}
	w.src.PushIndex(t, "windows/multi", "ltsc", append(entries, other)...)
	cfg := w.config(t, "  keep-ubr: 1\n  images:\n    windows/nanoserver: []\n    windows/multi: [ltsc]\n")
	if _, err := w.run(t, cfg, w.dst.Host); err != nil {
		t.Fatal(err)
	}
	raw, _, _ := w.dst.Manifest(t, "windows/multi", "ltsc")
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var versions []string
	for _, m := range idx.Manifests {
		versions = append(versions, m.Platform.OSVersion)
	}
	if strings.Join(versions, " ") != "10.0.17763.300 10.0.20348.5" {
		t.Errorf("keep-ubr 1 narrowed the index to %v, want the highest revision of each build", versions)
	}
	for tag, want := range map[string]bool{"10.0.17763.100": false, "10.0.17763.200": false, "10.0.17763.300": true, "10.0.20348.5": true} {
		if got := w.dst.TagExists(t, "windows/nanoserver", tag); got != want {
			t.Errorf("%s landed: %v, want %v", tag, got, want)
		}
	}
}

func TestSyncToBundle(t *testing.T) {
	w := newWorld(t)
	out := filepath.Join(t.TempDir(), "mirror.tar")
	rep, err := w.run(t, w.config(t, selection), "oci-archive:"+out)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := bundle.List(out)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]v1.Hash{}
	for _, e := range entries {
		got[e.Ref] = e.Descriptor.Digest
	}
	if len(got) != len(rep.Images) {
		t.Errorf("bundle holds %d images, want %d", len(got), len(rep.Images))
	}
	for ref, d := range w.digests {
		full := w.src.Host + "/" + ref
		if _, ok := got[full]; ok && got[full] != d {
			t.Errorf("%s: %s in the bundle, want %s", full, got[full], d)
		}
	}
	if _, ok := got[w.src.Host+"/app/web:v1.0.0"]; !ok {
		t.Errorf("bundle lacks app/web:v1.0.0: %v", got)
	}
	// The base layer is stored once (the bundle is a layout: one file per blob).
	_, ordinary := fixture.Layers(t, w.base)
	if n := w.src.Count("GET", "/blobs/"+ordinary[0].Digest.String()); n != 1 {
		t.Errorf("base layer fetched %d times, want 1", n)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
}

// TestSyncReferrersToBundleRefusedInThePlan: a bundle cannot record
// referrers; a dry run with --referrers says each image would fail, as the
// real run does, instead of planning a copy; the real run writes no file.
func TestSyncReferrersToBundleRefusedInThePlan(t *testing.T) {
	w := newWorld(t)
	out := filepath.Join(t.TempDir(), "mirror.tar")
	cfg := w.config(t, "  images:\n    app/api: [\"1\"]\n")
	for _, dry := range []bool{true, false} {
		rep, err := w.run(t, cfg, "oci-archive:"+out, func(o *syncer.Options) { o.DryRun, o.Referrers = dry, true })
		if !errors.Is(err, syncer.ErrImagesFailed) || len(rep.Images) != 1 || rep.Images[0].Status != syncer.Failed || !strings.Contains(rep.Images[0].Error, "cannot record referrers") {
			t.Fatalf("dry run %v: %v %+v", dry, err, rep.Images)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("dry run %v: wrote %s: %v", dry, out, err)
		}
	}
}

// TestSyncInterruptedLeavesTheBundleAlone: a run interrupted (Ctrl-C)
// after an image went into the bundle writes no partial bundle over the
// file of the last run, and says it was interrupted (exit code 130), not
// that images failed.
func TestSyncInterruptedLeavesTheBundleAlone(t *testing.T) {
	w := newWorld(t)
	out := filepath.Join(t.TempDir(), "mirror.tar")
	if err := os.WriteFile(out, []byte("last night's bundle"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rep, err := w.runCtx(t, ctx, w.config(t, selection), "oci-archive:"+out, func(o *syncer.Options) {
		o.Jobs = 1
		o.Done = func(img *syncer.Image) {
			if img.Status == syncer.Copied {
				cancel() // the user presses Ctrl-C once an image is in
			}
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("interrupted run: %v, want it to wrap context.Canceled", err)
	}
	if rep == nil || rep.Totals.Copied == 0 {
		t.Fatalf("no image went in before the interruption: %+v", rep)
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != "last night's bundle" {
		t.Errorf("the last run's bundle was replaced (%v): %d bytes", err, len(b))
	}
}

// TestSyncBundleNotCreatableFailsBeforePlanning: a bundle that cannot be
// created (its directory is missing) is an error before the plan lists a
// tag or resolves an image at the source.
func TestSyncBundleNotCreatableFailsBeforePlanning(t *testing.T) {
	w := newWorld(t)
	before := w.src.Count("", "")
	rep, err := w.run(t, w.config(t, selection), "oci-archive:"+filepath.Join(t.TempDir(), "no", "such", "mirror.tar"))
	if err == nil || rep != nil {
		t.Fatalf("a bundle in a missing directory: %v, %+v", err, rep)
	}
	if n := w.src.Count("", "") - before; n != 0 {
		t.Errorf("%d requests to the source before the bundle was found not creatable", n)
	}
}

func TestSyncRejectsBadDestination(t *testing.T) {
	w := newWorld(t)
	for _, dest := range []string{"oci-archive:", "HOST:5000/repo:tag@sha256:x", "UPPER/Case"} {
		if _, err := w.run(t, w.config(t, selection), dest); err == nil {
			t.Errorf("%s: accepted", dest)
		}
	}
}

func TestSyncToLayoutWithPlatformsRerunSkips(t *testing.T) {
	w := newWorld(t)
	dir := t.TempDir()
	cfg := w.config(t, "  platforms: [windows/amd64:10.0.17763]\n  images:\n    windows/servercore: [ltsc, ltsc2019]\n    app/web: [v1.0.0]\n")
	rep, err := w.run(t, cfg, "oci:"+dir)
	if err != nil {
		t.Fatal(err)
	}
	baseID, _ := w.base.Digest()
	for _, img := range rep.Images {
		if img.Status != syncer.Copied {
			t.Errorf("%s: %s %s", img.Source, img.Status, img.Error)
		}
		if strings.HasSuffix(img.Source, ":ltsc") && img.Digest != baseID.String() {
			t.Errorf("ltsc narrowed to one platform wrote %s, want that platform's manifest %s", img.Digest, baseID)
		}
	}
	idx, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"windows/servercore:ltsc", "windows/servercore:ltsc2019", "app/web:v1.0.0"} {
		if !strings.Contains(string(idx), `"`+w.src.Host+"/"+ref+`"`) {
			t.Errorf("the layout does not name %s: %s", ref, idx)
		}
	}
	rep, err = w.run(t, cfg, "oci:"+dir)
	if err != nil {
		t.Fatal(err)
	}
	for ref, s := range statuses(rep) {
		if s != syncer.Skipped {
			t.Errorf("rerun into the layout: %s %s, want skipped", ref, s)
		}
	}
}

// TestSyncDeclinedMountsCopyWithinTheDestination checks that when the
// destination declines cross-repository mounts, a blob shared by several
// repositories is still fetched from the source once: the later
// repositories get it from the destination repository that holds it.
func TestSyncDeclinedMountsCopyWithinTheDestination(t *testing.T) {
	w := newWorld(t)
	host := w.dstBehind(t, func(rw http.ResponseWriter, r *http.Request) bool {
		q := r.URL.Query()
		if q.Has("mount") {
			q.Del("mount")
			q.Del("from")
			r.URL.RawQuery = q.Encode()
		}
		return false
	})
	rep, err := w.run(t, w.config(t, selection), host+"/mirror")
	if err != nil {
		t.Fatalf("sync: %v (%+v)", err, rep)
	}
	_, ordinary := fixture.Layers(t, w.base)
	for _, l := range ordinary {
		if n := w.src.Count("GET", "/blobs/"+l.Digest.String()); n != 1 {
			t.Errorf("shared layer %s fetched %d times from the source, want 1", l.Digest, n)
		}
		if n := w.dst.Count("GET", "/blobs/"+l.Digest.String()); n == 0 {
			t.Errorf("shared layer %s was never read back from the destination: mounts were not declined?", l.Digest)
		}
		for _, repo := range []string{"windows/servercore", "app/api", "app/web"} {
			if !w.dst.BlobDigestOK(t, "mirror/"+repo, l.Digest) {
				t.Errorf("mirror/%s lacks %s", repo, l.Digest)
			}
		}
	}
}

// TestSyncFailedImageCountsTheBytesItMoved: an image whose blobs moved
// and whose manifest the destination refused still counts those bytes
// (in its own and the run's totals): the images that then found or
// mounted them moved none.
func TestSyncFailedImageCountsTheBytesItMoved(t *testing.T) {
	w := newWorld(t)
	host := w.dstBehind(t, func(rw http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
			http.Error(rw, `{"errors":[{"code":"DENIED","message":"no"}]}`, http.StatusForbidden)
			return true
		}
		return false
	})
	rep, err := w.run(t, w.config(t, "  images:\n    app/api: [\"1\"]\n"), host)
	if !errors.Is(err, syncer.ErrImagesFailed) || len(rep.Images) != 1 || rep.Images[0].Status != syncer.Failed {
		t.Fatalf("%v %+v", err, rep)
	}
	if w.dst.Count("PUT", "/blobs/") == 0 {
		t.Fatal("no blob moved before the manifest was refused")
	}
	if rep.Images[0].Bytes == 0 || rep.Totals.Bytes != rep.Images[0].Bytes {
		t.Errorf("image bytes %d, totals %d: want the bytes its blobs moved", rep.Images[0].Bytes, rep.Totals.Bytes)
	}
}

func TestSyncRefusesTwoSourcesAtOneDestination(t *testing.T) {
	w := newWorld(t)
	other := fixture.NewRegistry(t)
	other.Push(t, "app/web", "v1.0.0", w.app(t, "another registry's web"))
	cfg, err := syncer.Parse("sync.yaml", []byte(w.src.Host+":\n  images:\n    app/web: [v1.0.0]\n"+other.Host+":\n  images:\n    app/web: [v1.0.0]\n"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := w.run(t, cfg, w.dst.Host)
	if !errors.Is(err, syncer.ErrImagesFailed) || rep.Totals.Copied != 1 || rep.Totals.Failed != 1 ||
		!strings.Contains(rep.Images[1].Error, w.src.Host+"/app/web:v1.0.0 also lands at "+w.dst.Host+"/app/web:v1.0.0") {
		t.Fatalf("%v %+v %q", err, rep.Totals, rep.Images[1].Error)
	}
	if _, _, d := w.dst.Manifest(t, "app/web", "v1.0.0"); d != w.digests["app/web:v1.0.0"] {
		t.Errorf("the destination holds %s, want the first registry's %s", d, w.digests["app/web:v1.0.0"])
	}
}

// A destination that hands out presigned upload URLs (its storage's) that
// then fail: the image's error, printed and in --json, names the URL
// without its signature.
func TestSyncFailureHidesPresignedURLs(t *testing.T) {
	w := newWorld(t)
	storage := fixture.DroppingServer(t)
	host := w.dstBehind(t, func(rw http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/blobs/uploads/") && r.URL.Query().Get("mount") == "" {
			rw.Header().Set("Location", storage+"/upload?"+fixture.PresignedQuery)
			rw.WriteHeader(http.StatusAccepted)
			return true
		}
		return false
	})
	rep, err := w.run(t, w.config(t, "  images:\n    app/api: [\"1\"]\n"), host, func(o *syncer.Options) {
		o.Copy = append(o.Copy, transfer.WithRetries(1))
	})
	if !errors.Is(err, syncer.ErrImagesFailed) || len(rep.Images) != 1 {
		t.Fatalf("%v %+v", err, rep)
	}
	msg := rep.Images[0].Error
	if !strings.Contains(msg, strings.TrimPrefix(storage, "http://")) {
		t.Fatalf("the failure does not name the upload URL (the test asks nothing): %s", msg)
	}
	for _, secret := range fixture.PresignedSecrets {
		if strings.Contains(msg, secret) {
			t.Errorf("%s in the image's error: %s", secret, msg)
		}
	}
}

// A selection that matches no tag syncs nothing of its repository, fails
// nothing, and is named in the report's warnings (skopeo warns too); a
// selection that matches is not.
func TestSyncWarnsOfAnEmptySelection(t *testing.T) {
	w := newWorld(t)
	cfg := w.config(t, "  images-by-tag-regex:\n    app/web: ^v9\\.\n  images-by-semver:\n    app/api: \">= 100\"\n  images:\n    windows/servercore: [ltsc2019]\n")
	rep, err := w.run(t, cfg, w.dst.Host, func(o *syncer.Options) { o.DryRun = true })
	if err != nil {
		t.Fatalf("%v %+v", err, rep)
	}
	if len(rep.Images) != 1 {
		t.Errorf("planned %d images, want the one listed", len(rep.Images))
	}
	if len(rep.Warnings) != 2 || !strings.Contains(rep.Warnings[0], "app/web") || !strings.Contains(rep.Warnings[0], `^v9\.`) || !strings.Contains(rep.Warnings[1], "app/api") || !strings.Contains(rep.Warnings[1], ">=100") {
		t.Errorf("warnings %q, want app/web's regex and app/api's range named", rep.Warnings)
	}
}
