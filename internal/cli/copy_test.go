package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

// run executes ferry in process and returns stdout, stderr and the exit
// code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	root := NewRootCmd(&out, &errb)
	root.SetArgs(append([]string{"--progress", "none"}, args...))
	err := root.ExecuteContext(context.Background())
	printErr(&errb, err)
	return out.String(), errb.String(), ExitCode(err)
}

const allowLoopback = `^http://127\.0\.0\.1:`

func digestOf(t *testing.T, img v1.Image) v1.Hash {
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func configOf(t *testing.T, img v1.Image) v1.Hash {
	d, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCopyKeep(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	dst := fixture.NewRegistry(t)
	out, stderr, code := run(t, "copy", e.Reg.Ref("windows/servercore", "ltsc"), dst.Ref("mirror/servercore", "ltsc"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := dst.Ref("mirror/servercore", "ltsc") + "@" + e.Index.String() + "\n"
	if !strings.HasSuffix(out, want) {
		t.Errorf("stdout %q, want last line %q", out, want)
	}
	if _, _, d := dst.Manifest(t, "mirror/servercore", "ltsc"); d != e.Index {
		t.Errorf("digest %s, want %s", d, e.Index)
	}
	for _, img := range e.Platform {
		fl, ol := fixture.Layers(t, img)
		for _, l := range fl {
			if dst.HasBlob(t, "mirror/servercore", l.Digest) {
				t.Errorf("foreign blob %s copied with keep", l.Digest)
			}
		}
		for _, l := range ol {
			if !dst.BlobDigestOK(t, "mirror/servercore", l.Digest) {
				t.Errorf("blob %s missing", l.Digest)
			}
		}
		if !dst.HasBlob(t, "mirror/servercore", configOf(t, img)) {
			t.Errorf("config missing")
		}
	}
	// A rerun transfers nothing.
	out, _, code = run(t, "copy", "--json", e.Reg.Ref("windows/servercore", "ltsc"), dst.Ref("mirror/servercore", "ltsc"))
	var res struct {
		BlobsCopied, BlobsSkipped int
		Reference                 string
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("rerun: exit %d, %q", code, out)
	}
	if res.BlobsCopied != 0 || res.BlobsSkipped != 4 {
		t.Errorf("rerun copied %d, skipped %d; want 0 and 4", res.BlobsCopied, res.BlobsSkipped)
	}
}

func TestCopyInclude(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	dst := fixture.NewRegistry(t)
	_, stderr, code := run(t, "copy", "--foreign", "include", "--foreign-allow", allowLoopback,
		e.Reg.Ref("windows/servercore", "ltsc"), dst.Ref("mirror/servercore", "ltsc"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, _, d := dst.Manifest(t, "mirror/servercore", "ltsc"); d != e.Index {
		t.Errorf("digest %s, want %s", d, e.Index)
	}
	for _, img := range e.Platform {
		fl, ol := fixture.Layers(t, img)
		for _, l := range append(fl, ol...) {
			if !dst.BlobDigestOK(t, "mirror/servercore", l.Digest) {
				t.Errorf("blob %s missing or wrong", l.Digest)
			}
		}
	}
	if e.URLs.Requests("/fwlink") != 4 {
		t.Errorf("fwlink requests = %d, want 4 (one per foreign layer)", e.URLs.Requests("/fwlink"))
	}
	// The registry comes first: copying on from a registry that holds the
	// foreign blobs does not touch their URLs.
	third := fixture.NewRegistry(t)
	if _, stderr, code := run(t, "copy", "--foreign", "include", dst.Ref("mirror/servercore", "ltsc"), third.Ref("again", "ltsc")); code != 0 {
		t.Fatalf("second hop: exit %d: %s", code, stderr)
	}
	if e.URLs.Requests("/fwlink") != 4 {
		t.Errorf("second hop followed foreign URLs although the registry held the blobs")
	}
}

func TestCopyRewriteURLs(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	dst := fixture.NewRegistry(t)
	out, stderr, code := run(t, "copy", "--foreign-rewrite-urls", e.URLs.URL+"/=https://mirror.corp.example/ms/",
		e.Reg.Ref("windows/servercore", "ltsc2019"), dst.Ref("app", "v1"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	raw, _, d := dst.Manifest(t, "app", "v1")
	if d == e.SingleID || !strings.Contains(out, d.String()) || !strings.Contains(stderr, e.SingleID.String()+" -> "+d.String()) {
		t.Errorf("rewritten digest not reported: %s / %s", out, stderr)
	}
	if !bytes.Contains(raw, []byte("https://mirror.corp.example/ms/fwlink?linkid=")) || bytes.Contains(raw, []byte(e.URLs.URL)) {
		t.Errorf("urls not rewritten: %s", raw)
	}
}

func TestCopyLocalize(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	dst := fixture.NewRegistry(t)
	out, stderr, code := run(t, "copy", "--foreign", "localize", "--foreign-allow", allowLoopback,
		e.Reg.Ref("windows/servercore", "ltsc"), dst.Ref("mirror/servercore", "ltsc"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Count(stderr, " -> ") != 3 {
		t.Errorf("stderr should list 3 rewritten digests (2 manifests, 1 index):\n%s", stderr)
	}
	raw, _, d := dst.Manifest(t, "mirror/servercore", "ltsc")
	if d == e.Index || !strings.Contains(out, d.String()) {
		t.Errorf("index digest %s should be new and printed (%q)", d, out)
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil || len(idx.Manifests) != 2 {
		t.Fatalf("index: %v, %d entries", err, len(idx.Manifests))
	}
	for i, entry := range idx.Manifests {
		if entry.Platform == nil || entry.Platform.OS != "windows" {
			t.Errorf("entry %d lost its platform", i)
		}
		mraw, _, _ := dst.Manifest(t, "mirror/servercore", entry.Digest.String())
		if bytes.Contains(mraw, []byte("foreign")) || bytes.Contains(mraw, []byte("urls")) {
			t.Errorf("manifest %s still has foreign layers: %s", entry.Digest, mraw)
		}
		m, err := v1.ParseManifest(bytes.NewReader(mraw))
		if err != nil {
			t.Fatal(err)
		}
		if m.Config.Digest != configOf(t, e.Platform[i]) {
			t.Errorf("config changed: %s", m.Config.Digest)
		}
		for _, l := range m.Layers {
			if !dst.BlobDigestOK(t, "mirror/servercore", l.Digest) {
				t.Errorf("blob %s missing", l.Digest)
			}
		}
	}
}

func TestCopyResumesDroppedConnection(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	dst := fixture.NewRegistry(t)
	fl, _ := fixture.Layers(t, e.Single)
	e.URLs.DropAfter(fl[0].Digest.Hex, fl[0].Size/2)
	_, stderr, code := run(t, "copy", "--foreign", "include", "--foreign-allow", allowLoopback,
		e.Reg.Ref("windows/servercore", "ltsc2019"), dst.Ref("app", "v1"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if e.URLs.RangeRequests() == 0 {
		t.Error("no Range request: the transfer did not resume")
	}
	if !dst.BlobDigestOK(t, "app", fl[0].Digest) {
		t.Error("resumed blob does not verify")
	}
}

func TestCopyCorruptForeignBlob(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	dst := fixture.NewRegistry(t)
	fl, _ := fixture.Layers(t, e.Single)
	e.URLs.Corrupt(fl[1].Digest.Hex)
	_, stderr, code := run(t, "copy", "--foreign", "include", "--foreign-allow", allowLoopback,
		e.Reg.Ref("windows/servercore", "ltsc2019"), dst.Ref("app", "v1"))
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, stderr)
	}
	if !strings.Contains(stderr, fl[1].Digest.String()) || !strings.Contains(stderr, fl[1].URLs[0]) {
		t.Errorf("message should name the digest and the URL: %s", stderr)
	}
	if dst.TagExists(t, "app", "v1") {
		t.Error("a failed copy left a tag")
	}
}

func TestCopyLoopbackURLNeedsAllow(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	dst := fixture.NewRegistry(t)
	_, stderr, code := run(t, "copy", "--foreign", "include", e.Reg.Ref("windows/servercore", "ltsc2019"), dst.Ref("app", "v1"))
	if code != 1 || !strings.Contains(stderr, "loopback") || !strings.Contains(stderr, "--foreign-allow") {
		t.Fatalf("exit %d, want 1 with a loopback refusal: %s", code, stderr)
	}
	if dst.TagExists(t, "app", "v1") {
		t.Error("a failed copy left a tag")
	}
}

func TestCopyPlatform(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	dst := fixture.NewRegistry(t)
	out, stderr, code := run(t, "copy", "--platform", "ltsc2019", e.Reg.Ref("windows/servercore", "ltsc"), dst.Ref("one", "v1"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := digestOf(t, e.Platform[0])
	if !strings.Contains(out, want.String()) {
		t.Errorf("stdout %q should name the ltsc2019 manifest %s", out, want)
	}
	if _, _, d := dst.Manifest(t, "one", "v1"); d != want {
		t.Errorf("tag points at %s, want %s", d, want)
	}
	_, stderr, code = run(t, "copy", "--platform", "ltsc2025", e.Reg.Ref("windows/servercore", "ltsc"), dst.Ref("none", "v1"))
	if code != 1 || !strings.Contains(stderr, "10.0.20348") {
		t.Errorf("no-match: exit %d, %s", code, stderr)
	}
}

func TestCopyMountsWithinRegistry(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	before := e.Reg.Count("PUT", "/blobs/uploads/")
	out, stderr, code := run(t, "copy", "--json", e.Reg.Ref("windows/servercore", "ltsc2019"), e.Reg.Ref("team/app", "v1"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res struct{ BlobsMounted, BlobsCopied int }
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	if res.BlobsMounted != 2 || res.BlobsCopied != 0 {
		t.Errorf("mounted %d, copied %d; want 2 and 0", res.BlobsMounted, res.BlobsCopied)
	}
	if n := e.Reg.Count("PUT", "/blobs/uploads/") - before; n != 0 {
		t.Errorf("%d blob uploads, want 0", n)
	}
}

func TestCopyForeignRefusedExplained(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	// The reference configuration refuses every foreign URL it is not told
	// to allow.
	strict := fixture.NewRegistry(t, serverForeignURLs("^https://only\\.example/", ""))
	_, stderr, code := run(t, "copy", e.Reg.Ref("windows/servercore", "ltsc2019"), strict.Ref("app", "v1"))
	if code != 1 || !strings.Contains(stderr, "foreign") || !strings.Contains(stderr, "--foreign include") {
		t.Fatalf("exit %d; want a refusal naming the fix: %s", code, stderr)
	}
}

func TestBadInput(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	for _, args := range [][]string{
		{"copy", "UPPER/Case", "localhost:5000/x"},
		{"copy", "s3:bucket/x", "localhost:5000/x"},
		{"copy", "only-one-arg"},
		{"copy", "--foreign", "maybe", "a/b", "c/d"},
	} {
		if _, stderr, code := run(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, stderr)
		}
	}
	missing := e.Reg.Ref("windows/servercore", "nope")
	_, stderr, code := run(t, "copy", missing, e.Reg.Ref("x", "y"))
	if code != 1 || !strings.Contains(stderr, "nope") {
		t.Errorf("missing tag: exit %d, %s", code, stderr)
	}
}

func TestInspectShowsForeign(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	out, stderr, code := run(t, "inspect", e.Reg.Ref("windows/servercore", "ltsc"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{e.Index.String(), "windows/amd64:10.0.17763.5830", "windows/amd64:10.0.20348.2461", "FOREIGN", e.URLs.URL + "/fwlink?linkid="} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	out, _, code = run(t, "digest", e.Reg.Ref("windows/servercore", "ltsc2019"))
	if code != 0 || strings.TrimSpace(out) != e.SingleID.String() {
		t.Errorf("digest: %d %q", code, out)
	}
	out, _, code = run(t, "tags", e.Reg.Host+"/windows/servercore")
	if code != 0 || out != "ltsc\nltsc2019\n" {
		t.Errorf("tags: %d %q", code, out)
	}
	out, _, code = run(t, "catalog", e.Reg.Host)
	if code != 0 || !strings.Contains(out, "windows/servercore") {
		t.Errorf("catalog: %d %q", code, out)
	}
}

func TestInspectConfigAndDelete(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	out, stderr, code := run(t, "inspect", "--config", "--platform", "ltsc2022", e.Reg.Ref("windows/servercore", "ltsc"))
	if code != 0 || !strings.Contains(out, `"os.version":"10.0.20348.2461"`) {
		t.Fatalf("inspect --config: exit %d, %s %s", code, out, stderr)
	}
	if _, stderr, code = run(t, "inspect", "--config", e.Reg.Ref("windows/servercore", "ltsc")); code != 1 || !strings.Contains(stderr, "--platform") {
		t.Errorf("--config on an index without --platform: exit %d, %s", code, stderr)
	}
	out, _, code = run(t, "inspect", "--raw", e.Reg.Ref("windows/servercore", "ltsc2019"))
	if d, _, _ := v1.SHA256(strings.NewReader(strings.TrimSuffix(out, "\n"))); code != 0 || d != e.SingleID {
		t.Errorf("inspect --raw: exit %d, digest %s, want %s", code, d, e.SingleID)
	}
	if _, stderr, code = run(t, "delete", e.Reg.Ref("windows/servercore", "ltsc2019")); code != 0 {
		t.Fatalf("delete: exit %d, %s", code, stderr)
	}
	if e.Reg.TagExists(t, "windows/servercore", "ltsc2019") {
		t.Error("tag still resolves after delete")
	}
}

func TestCopyOCINondistributableLocalize(t *testing.T) {
	reg := fixture.NewRegistry(t)
	urls := fixture.NewURLServer(t)
	a := urls.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.26100.1", ForeignLayers: 1, Layers: 1, Seed: 7, OCI: true})
	b := urls.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.20348.9", ForeignLayers: 1, Layers: 1, Seed: 8, OCI: true})
	idx, _ := reg.PushIndex(t, "oci/win", "v1", a, b)
	dst := fixture.NewRegistry(t)
	// keep preserves the OCI index digest.
	if _, stderr, code := run(t, "copy", reg.Ref("oci/win", "v1"), dst.Ref("keep", "v1")); code != 0 {
		t.Fatalf("keep: exit %d: %s", code, stderr)
	}
	if _, mt, d := dst.Manifest(t, "keep", "v1"); d != idx || mt != "application/vnd.oci.image.index.v1+json" {
		t.Errorf("keep: %s %s, want %s", mt, d, idx)
	}
	_, stderr, code := run(t, "copy", "--foreign", "localize", "--foreign-allow", allowLoopback, "--platform", "ltsc2025", reg.Ref("oci/win", "v1"), dst.Ref("loc", "v1"))
	if code != 0 {
		t.Fatalf("localize: exit %d: %s", code, stderr)
	}
	raw, mt, _ := dst.Manifest(t, "loc", "v1")
	if mt != "application/vnd.oci.image.manifest.v1+json" || bytes.Contains(raw, []byte("nondistributable")) ||
		!bytes.Contains(raw, []byte(`"application/vnd.oci.image.layer.v1.tar+gzip"`)) {
		t.Errorf("localized OCI manifest (%s): %s", mt, raw)
	}
}

func TestOCILayoutRoundTrip(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	dir := t.TempDir() + "/layout"
	// Local destinations default to include: the layout holds the base layers.
	_, stderr, code := run(t, "copy", "--foreign-allow", allowLoopback, e.Reg.Ref("windows/servercore", "ltsc"), "oci:"+dir+":ltsc")
	if code != 0 {
		t.Fatalf("to layout: exit %d: %s", code, stderr)
	}
	if _, stderr, code = run(t, "copy", "--foreign-allow", allowLoopback, e.Reg.Ref("windows/servercore", "ltsc2019"), "oci:"+dir+":ltsc2019"); code != 0 {
		t.Fatalf("second image into the same layout: exit %d: %s", code, stderr)
	}
	for _, img := range e.Platform {
		fl, ol := fixture.Layers(t, img)
		for _, l := range append(fl, ol...) {
			if _, err := os.Stat(dir + "/blobs/sha256/" + l.Digest.Hex); err != nil {
				t.Errorf("layout lacks blob %s", l.Digest)
			}
		}
	}
	dst := fixture.NewRegistry(t)
	out, stderr, code := run(t, "copy", "--foreign", "include", "oci:"+dir+":ltsc", dst.Ref("back", "ltsc"))
	if code != 0 {
		t.Fatalf("from layout: exit %d: %s", code, stderr)
	}
	if _, _, d := dst.Manifest(t, "back", "ltsc"); d != e.Index || !strings.Contains(out, e.Index.String()) {
		t.Errorf("round trip changed the digest: %s, want %s", d, e.Index)
	}
	if e.URLs.Requests("/fwlink") != 4 { // the second image shares its blobs with the first
		t.Errorf("pushing from the layout fetched foreign URLs again (%d fwlink requests)", e.URLs.Requests("/fwlink"))
	}
	// Both tags live side by side in index.json.
	idx, err := os.ReadFile(dir + "/index.json")
	if err != nil || !bytes.Contains(idx, []byte(`"org.opencontainers.image.ref.name":"ltsc"`)) || !bytes.Contains(idx, []byte(`"org.opencontainers.image.ref.name":"ltsc2019"`)) {
		t.Errorf("index.json: %v %s", err, idx)
	}
	// No temporary files are left behind.
	matches, _ := filepath.Glob(dir + "/blobs/sha256/.tmp-*")
	if len(matches) != 0 {
		t.Errorf("temporary files left: %v", matches)
	}
}

func TestOCILayoutCorruptBlob(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	dir := t.TempDir() + "/layout"
	if _, stderr, code := run(t, "copy", "--foreign-allow", allowLoopback, e.Reg.Ref("windows/servercore", "ltsc2019"), "oci:"+dir+":v1"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	_, ol := fixture.Layers(t, e.Single)
	p := dir + "/blobs/sha256/" + ol[0].Digest.Hex
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 1
	os.WriteFile(p, b, 0o644)
	dst := fixture.NewRegistry(t)
	_, stderr, code := run(t, "copy", "oci:"+dir+":v1", dst.Ref("x", "v1"))
	if code != 1 || !strings.Contains(stderr, ol[0].Digest.String()) {
		t.Errorf("exit %d, want 1 naming %s: %s", code, ol[0].Digest, stderr)
	}
	if dst.TagExists(t, "x", "v1") {
		t.Error("tag written despite a corrupt blob")
	}
}

// A source registry that redirects a blob to its storage with a
// presigned URL (distribution on S3) which then drops the connection:
// copy fails naming the URL, without its signature or session token.
func TestCopyErrorHidesPresignedURL(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	src, storage := fixture.PresignedRedirect(t, e.Reg.URL, e.Blobs[0])
	ref := strings.TrimPrefix(src, "http://") + "/" + fixture.Repo + ":" + fixture.SingleTag
	dst := fixture.NewRegistry(t)
	_, stderr, code := run(t, "copy", "--retry-delay", "1ms", ref, dst.Ref("app", "v1"))
	if code != 1 || !strings.Contains(stderr, storage) {
		t.Fatalf("exit %d, want 1 naming the storage URL: %s", code, stderr)
	}
	for _, secret := range fixture.PresignedSecrets {
		if strings.Contains(stderr, secret) {
			t.Errorf("%s printed: %s", secret, stderr)
		}
	}
	// --json's error object on stdout too.
	out, _, code := run(t, "copy", "--json", "--retry-delay", "1ms", ref, dst.Ref("app", "v2"))
	if code != 1 || !strings.Contains(out, storage) {
		t.Fatalf("--json: exit %d, want 1 naming the storage URL: %s", code, out)
	}
	for _, secret := range fixture.PresignedSecrets {
		if strings.Contains(out, secret) {
			t.Errorf("%s in --json's error: %s", secret, out)
		}
	}
}
