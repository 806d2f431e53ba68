package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/foreign"
	"github.com/ferry-dev/ferry/imagemod"
	"github.com/ferry-dev/ferry/internal/testkit/faults"
	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/mediatype"
)

func sha(b []byte) v1.Hash {
	d, _, _ := v1.SHA256(bytes.NewReader(b))
	return d
}

func gunzipSHA(t *testing.T, b []byte) v1.Hash {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := v1.SHA256(zr)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestAppendForeignURL(t *testing.T) {
	reg, urls := fixture.NewRegistry(t), fixture.NewURLServer(t)
	b := fixture.LayerTar(42, 0, 16<<10)
	u := urls.Add(b)
	args := []string{"append", "--platform", "windows/amd64:" + patchA, "--foreign-url", u, "-t", reg.Ref("app/foreign", "1")}

	// The URL policy applies: loopback is refused unless allowed.
	if _, stderr, code := run(t, args...); code != 1 || !strings.Contains(stderr, "refused") {
		t.Fatalf("loopback URL without --foreign-allow: exit %d: %s", code, stderr)
	}
	if reg.TagExists(t, "app/foreign", "1") {
		t.Fatal("a refused append wrote the tag")
	}
	before := urls.Requests("/fwlink")
	_, stderr, code := run(t, append(args, "--foreign-allow", allowLoopback)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if n := urls.Requests("/fwlink") - before; n != 1 {
		t.Errorf("the URL was read %d times, want once", n)
	}
	w := readImage(t, reg, "app/foreign", "1")
	if len(w.manifest.Layers) != 1 {
		t.Fatalf("%d layers", len(w.manifest.Layers))
	}
	l := w.manifest.Layers[0]
	if string(l.MediaType) != mediatype.OCINondistGzip || l.Digest != sha(b) || l.Size != int64(len(b)) || len(l.URLs) != 1 || l.URLs[0] != u {
		t.Errorf("descriptor %+v; want %s, %s, %d bytes, urls [%s]", l, mediatype.OCINondistGzip, sha(b), len(b), u)
	}
	if want := gunzipSHA(t, b); len(w.cfg.RootFS.DiffIDs) != 1 || w.cfg.RootFS.DiffIDs[0] != want {
		t.Errorf("diff_ids %v, want [%s]", w.cfg.RootFS.DiffIDs, want)
	}
	if w.cfg.OS != "windows" || w.cfg.OSVersion != patchA {
		t.Errorf("platform %s %s", w.cfg.OS, w.cfg.OSVersion)
	}
	if reg.HasBlob(t, "app/foreign", l.Digest) {
		t.Error("the registry holds the foreign blob")
	}
	// Pulling the result follows the URL and verifies the bytes.
	dir := filepath.Join(t.TempDir(), "layout")
	if _, stderr, code := run(t, "copy", "--foreign-allow", allowLoopback, reg.Ref("app/foreign", "1"), "oci:"+dir+":v1"); code != 0 {
		t.Fatalf("pull: exit %d: %s", code, stderr)
	}
	got, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", l.Digest.Hex))
	if err != nil || sha(got) != l.Digest {
		t.Errorf("pulled blob: %v", err)
	}
	// A corrupted URL fails the pull.
	urls.Corrupt(l.Digest.Hex)
	if _, stderr, code := run(t, "copy", "--foreign-allow", allowLoopback, reg.Ref("app/foreign", "1"), "oci:"+dir+"2:v1"); code != 1 || !strings.Contains(stderr, "digest") {
		t.Errorf("corrupt URL: exit %d: %s", code, stderr)
	}
}

func writeTree(t *testing.T, dir string, mtime time.Time) {
	t.Helper()
	files := map[string]string{"Files/app/web.exe": "MZ fake", "Files/app/config/app.json": `{"a":1}`, "Files/readme.txt": "hello"}
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	filepath.WalkDir(dir, func(p string, _ os.DirEntry, _ error) error { return os.Chtimes(p, mtime, mtime) })
}

func TestAppendLayerDirReproducible(t *testing.T) {
	e := newRebaseEnv(t, nil)
	dir1, dir2 := t.TempDir(), t.TempDir()
	writeTree(t, dir1, time.Now())
	writeTree(t, dir2, time.Now().Add(-time.Hour))
	base := e.reg.Ref("windows/servercore", "patch-a")
	var digests, layerDigests []string
	for i, dir := range []string{dir1, dir2} {
		tag := []string{"a", "b"}[i]
		out, stderr, code := run(t, "append", "--base", base, "--layer", dir, "--label", "team=web", "-t", e.reg.Ref("app/dir", tag))
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		digests = append(digests, lastLine(out)[strings.LastIndex(lastLine(out), "@")+1:])
		w := readImage(t, e.reg, "app/dir", tag)
		validate(t, e.reg, "app/dir", w)
		bm := manifestOf(t, e.baseA)
		if n := len(w.manifest.Layers); n != len(bm.Layers)+1 {
			t.Fatalf("%d layers", n)
		}
		if !equalKeys(descKeys(w.manifest.Layers[:len(bm.Layers)]), descKeys(bm.Layers)) {
			t.Error("base layers changed")
		}
		if w.cfg.Config.Labels["team"] != "web" || w.manifest.Annotations[imagemod.AnnotationBaseDigest] != digestOf(t, e.baseA).String() {
			t.Errorf("labels %v, annotations %v", w.cfg.Config.Labels, w.manifest.Annotations)
		}
		if len(w.cfg.History) != len(configFileOf(t, e.baseA).History)+1 {
			t.Errorf("history has %d entries", len(w.cfg.History))
		}
		layerDigests = append(layerDigests, w.manifest.Layers[len(bm.Layers)].Digest.String())
		// The tar is deterministic: sorted entries, fixed mtime and owner.
		tr := tar.NewReader(mustGunzip(t, getBlob(t, e.reg, "app/dir", w.manifest.Layers[len(bm.Layers)].Digest)))
		var names []string
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			names = append(names, h.Name)
			if !h.ModTime.Equal(imagemod.TarEpoch) || h.Uid != 0 || h.Gid != 0 {
				t.Errorf("%s: mtime %v uid %d gid %d", h.Name, h.ModTime, h.Uid, h.Gid)
			}
		}
		if strings.Join(names, " ") != "Files/ Files/app/ Files/app/config/ Files/app/config/app.json Files/app/web.exe Files/readme.txt" {
			t.Errorf("entries %q", names)
		}
	}
	if layerDigests[0] != layerDigests[1] {
		t.Errorf("the same tree gave layers %s and %s", layerDigests[0], layerDigests[1])
	}
	if digests[0] != digests[1] {
		t.Errorf("the same tree gave %s and %s", digests[0], digests[1])
	}
}

func equalKeys(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

func mustGunzip(t *testing.T, b []byte) *gzip.Reader {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return zr
}

func TestAppendTarFiles(t *testing.T) {
	reg := fixture.NewRegistry(t)
	tgz := fixture.LayerTar(3, 0, 4<<10)
	dir := t.TempDir()
	gzPath, tarPath := filepath.Join(dir, "l.tar.gz"), filepath.Join(dir, "l.tar")
	if err := os.WriteFile(gzPath, tgz, 0o644); err != nil {
		t.Fatal(err)
	}
	plain, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	var tarBytes bytes.Buffer
	tarBytes.ReadFrom(plain)
	if err := os.WriteFile(tarPath, tarBytes.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := run(t, "append", "--platform", "linux/amd64", "--layer", gzPath, "--layer", tarPath, "--annotation", "x=y", "-t", reg.Ref("app/tar", "1"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	w := readImage(t, reg, "app/tar", "1")
	validate(t, reg, "app/tar", w)
	if w.manifest.Layers[0].Digest != sha(tgz) {
		t.Errorf("a .tar.gz is taken as it is: got %s, want %s", w.manifest.Layers[0].Digest, sha(tgz))
	}
	if w.cfg.RootFS.DiffIDs[0] != w.cfg.RootFS.DiffIDs[1] || w.cfg.RootFS.DiffIDs[1] != sha(tarBytes.Bytes()) {
		t.Errorf("diff_ids %v, want both %s", w.cfg.RootFS.DiffIDs, sha(tarBytes.Bytes()))
	}
	if w.manifest.Annotations["x"] != "y" {
		t.Errorf("annotations %v", w.manifest.Annotations)
	}
	// Bad usage is said before the target registry is asked anything.
	before := reg.Count("", "")
	for _, args := range [][]string{
		{"append", "--layer", gzPath, "-t", reg.Ref("app/bad", "1")},           // scratch without platform
		{"append", "--platform", "linux/amd64", "-t", reg.Ref("app/bad", "1")}, // nothing to add
	} {
		if _, stderr, code := run(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, code, stderr)
		}
	}
	if n := reg.Count("", "") - before; n != 0 {
		t.Errorf("append with bad usage sent %d requests to the target registry, want 0", n)
	}
	// Bad input.
	notTar := filepath.Join(dir, "x.txt")
	os.WriteFile(notTar, bytes.Repeat([]byte("not a tar "), 100), 0o644)
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"append", "--platform", "linux/amd64", "--layer", notTar, "-t", reg.Ref("app/bad", "1")}, 1}, // not a tar
		{[]string{"append", "--platform", "linux/amd64", "--foreign-url", "ftp://x/y", "-t", reg.Ref("app/bad", "1")}, 2},
		{[]string{"append", "--platform", "linux/amd64", "--label", "novalue", "--layer", gzPath, "-t", reg.Ref("app/bad", "1")}, 2},
	} {
		if _, stderr, code := run(t, c.args...); code != c.code {
			t.Errorf("%v: exit %d, want %d: %s", c.args, code, c.code, stderr)
		}
	}
	if reg.TagExists(t, "app/bad", "1") {
		t.Error("a failed append wrote the tag")
	}
}

// A URL server that takes the request, sends the headers and the first
// bytes of the layer and then falls silent: append --foreign-url gives up
// after --stall-timeout with an error naming the URL and the timeout,
// instead of waiting forever.
func TestAppendForeignURLStalls(t *testing.T) {
	t.Parallel()
	reg := fixture.NewRegistry(t)
	b := fixture.LayerTar(42, 0, 64<<10)
	quit := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b[:100])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-quit:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(quit) }) // first: a hung test must not hang srv.Close
	u := srv.URL + "/layer.tar.gz"
	type result struct {
		stderr string
		code   int
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		_, stderr, code := run(t, "--stall-timeout", "500ms", "append", "--platform", "windows/amd64:"+patchA,
			"--foreign-url", u, "--foreign-allow", allowLoopback, "-t", reg.Ref("app/stalled", "1"))
		done <- result{stderr, code}
	}()
	select {
	case r := <-done:
		if r.code != 1 {
			t.Fatalf("exit %d after a stall: %s", r.code, r.stderr)
		}
		for _, want := range []string{u, "stalled", "500ms"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("the error does not say %q: %s", want, r.stderr)
			}
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("the stall was noticed after %s", took)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("append --foreign-url still waits on a silent server after 30s (--stall-timeout 500ms)")
	}
	if reg.TagExists(t, "app/stalled", "1") {
		t.Error("a failed append wrote the tag")
	}
}

// The upload of an appended layer goes through the copy engine's blob
// transfers: a 503 from the destination is retried, and reported.
func TestAppendUploadRetried(t *testing.T) {
	t.Parallel()
	reg := fixture.NewRegistry(t)
	p := faults.New(t, reg.URL)
	b := fixture.LayerTar(7, 0, 16<<10)
	file := filepath.Join(t.TempDir(), "layer.tar.gz")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	d := sha(b)
	// The PUT that completes the layer's upload carries its digest.
	p.Add(at(d.Hex, faults.Fault{Kind: faults.Status, Method: "PUT", Status: 503}))
	out, stderr, code := run(t, "--retry-delay", "10ms", "--progress", "plain", "append", "--json",
		"--platform", "windows/amd64:"+patchA, "--layer", file, "-t", p.Host+"/app/retried:1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "retrying") || !strings.Contains(stderr, "503") {
		t.Errorf("no retry reported: %s", stderr)
	}
	var res struct{ Uploaded int }
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Uploaded != 1 {
		t.Errorf("summary %q (%v): want 1 layer uploaded", out, err)
	}
	// The layer twice, the config once.
	if n := p.Requests("PUT", "/blobs/uploads/"); n != 3 {
		t.Errorf("%d upload PUTs, want 3", n)
	}
	if !reg.HasBlob(t, "app/retried", d) {
		t.Error("the registry lacks the layer")
	}
	w := readImage(t, reg, "app/retried", "1")
	if len(w.manifest.Layers) != 1 || w.manifest.Layers[0].Digest != d {
		t.Errorf("layers %+v, want %s", w.manifest.Layers, d)
	}
}

// TestAppendConfigRetried: the image config append builds in memory goes
// through the copy engine like its layers, so a 503 on its upload is
// retried rather than failing the command.
func TestAppendConfigRetried(t *testing.T) {
	t.Parallel()
	b := fixture.LayerTar(8, 0, 16<<10)
	file := filepath.Join(t.TempDir(), "layer.tar.gz")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	args := func(host string) []string {
		return []string{"--retry-delay", "10ms", "--progress", "plain", "append",
			"--platform", "windows/amd64:" + patchA, "--layer", file, "-t", host + "/app/cfg:1"}
	}
	// A first run learns the config's digest (append is deterministic).
	first := fixture.NewRegistry(t)
	if _, stderr, code := run(t, args(strings.TrimPrefix(first.URL, "http://"))...); code != 0 {
		t.Fatalf("first append: exit %d: %s", code, stderr)
	}
	cfg := readImage(t, first, "app/cfg", "1").manifest.Config.Digest

	reg := fixture.NewRegistry(t)
	p := faults.New(t, reg.URL)
	p.Add(at(cfg.Hex, faults.Fault{Kind: faults.Status, Method: "PUT", Status: 503}))
	_, stderr, code := run(t, args(p.Host)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "retrying") || !strings.Contains(stderr, cfg.Hex[:12]) {
		t.Errorf("no retry of the config reported: %s", stderr)
	}
	if got := readImage(t, reg, "app/cfg", "1").manifest.Config.Digest; got != cfg {
		t.Errorf("config %s, want %s", got, cfg)
	}
	if !reg.HasBlob(t, "app/cfg", cfg) {
		t.Error("the registry lacks the config")
	}
}

// TestStallHint: a command that failed on a stall names the flag that
// decides how long ferry waits.
func TestStallHint(t *testing.T) {
	err := fmt.Errorf("blob sha256:abc: %w", fmt.Errorf("GET http://x/y: %w: no data moved for 1s", foreign.ErrStalled))
	if h := hint(err); !strings.Contains(h, "--stall-timeout") {
		t.Errorf("hint for a stall: %q", h)
	}
	if h := hint(errors.New("other")); h != "" {
		t.Errorf("hint for another error: %q", h)
	}
}

// TestUploadHonoursRetryAfter: a registry that answers a blob upload with
// 503 and Retry-After gets its wait, even with a shorter --retry-delay.
func TestUploadHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	reg := fixture.NewRegistry(t)
	p := faults.New(t, reg.URL)
	b := fixture.LayerTar(9, 0, 16<<10)
	file := filepath.Join(t.TempDir(), "layer.tar.gz")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	p.Add(at(sha(b).Hex, faults.Fault{Kind: faults.Status, Method: "PUT", Status: 503, RetryAfter: "1"}))
	start := time.Now()
	_, stderr, code := run(t, "--retry-delay", "10ms", "append",
		"--platform", "windows/amd64:"+patchA, "--layer", file, "-t", p.Host+"/app/later:1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("retried after %s, before the 1 s the registry asked for", d)
	}
}

// TestAppendForeignURLCredentials: a URL with user:password@ is refused as
// bad input before anything is fetched or pushed, and the password appears
// nowhere: not in the error, not in a manifest.
func TestAppendForeignURLCredentials(t *testing.T) {
	reg, urls := fixture.NewRegistry(t), fixture.NewURLServer(t)
	u := urls.Add(fixture.LayerTar(43, 0, 4<<10))
	withUser := strings.Replace(u, "http://", "http://u:SECRET@", 1)
	before := urls.Requests("/fwlink")
	_, stderr, code := run(t, "append", "--platform", "windows/amd64:"+patchA, "--foreign-url", withUser,
		"--foreign-allow", `@`, "--foreign-allow", allowLoopback, "-t", reg.Ref("app/creds", "1"))
	if code != 2 || !strings.Contains(stderr, "credentials") || strings.Contains(stderr, "SECRET") {
		t.Fatalf("exit %d, want 2 with an error about credentials that hides the password: %s", code, stderr)
	}
	if urls.Requests("/fwlink") != before {
		t.Error("the URL was fetched")
	}
	if reg.TagExists(t, "app/creds", "1") {
		t.Error("the image was pushed")
	}
}

// TestAppendForeignURLCredentialsBadScheme: a URL that is refused for its
// scheme still hides its password: pflag quotes the argument of a flag
// whose Set fails, so the user part is checked first.
func TestAppendForeignURLCredentialsBadScheme(t *testing.T) {
	reg := fixture.NewRegistry(t)
	_, stderr, code := run(t, "append", "--platform", "linux/amd64", "--foreign-url", "ftp://u:SECRET@mirror.example/x.tar.gz",
		"-t", reg.Ref("app/creds", "1"))
	if code != 2 || strings.Contains(stderr, "SECRET") {
		t.Fatalf("exit %d, want 2 with an error that hides the password: %s", code, stderr)
	}
}

// TestAppendForeignURLCredentialsUnparsable: a URL that does not parse
// (a bad port) and holds user:password@ is refused as bad input without
// its password: pflag would quote it were Set to fail.
func TestAppendForeignURLCredentialsUnparsable(t *testing.T) {
	reg := fixture.NewRegistry(t)
	_, stderr, code := run(t, "append", "--platform", "linux/amd64", "--foreign-url", "https://u:SECRET@mirror.example:port/x.tar.gz",
		"-t", reg.Ref("app/creds", "1"))
	if code != 2 || strings.Contains(stderr, "SECRET") || !strings.Contains(stderr, "mirror.example:port/x.tar.gz") {
		t.Fatalf("exit %d, want 2 with an error naming the URL without its password: %s", code, stderr)
	}
}
