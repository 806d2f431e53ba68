package cli

import (
	"archive/tar"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

func TestOCIArchiveRoundTrip(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	dir := t.TempDir()
	archive := filepath.Join(dir, "servercore.tar")
	if _, stderr, code := run(t, "copy", "--foreign-allow", allowLoopback, e.Reg.Ref("windows/servercore", "ltsc"), "oci-archive:"+archive+":ltsc"); code != 0 {
		t.Fatalf("to archive: exit %d: %s", code, stderr)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	dst := fixture.NewRegistry(t)
	if _, stderr, code := run(t, "copy", "--foreign", "include", "oci-archive:"+archive, dst.Ref("back", "ltsc")); code != 0 {
		t.Fatalf("from archive: exit %d: %s", code, stderr)
	}
	if _, _, d := dst.Manifest(t, "back", "ltsc"); d != e.Index {
		t.Errorf("digest %s, want %s", d, e.Index)
	}
	for _, img := range e.Platform {
		fl, ol := fixture.Layers(t, img)
		for _, l := range append(fl, ol...) {
			if !dst.BlobDigestOK(t, "back", l.Digest) {
				t.Errorf("blob %s missing after the round trip", l.Digest)
			}
		}
	}
	if e.URLs.Requests("/fwlink") != 4 {
		t.Errorf("the archive did not carry the foreign layers (%d fwlink requests)", e.URLs.Requests("/fwlink"))
	}
	// localize works from the archive too.
	if _, stderr, code := run(t, "copy", "--foreign", "localize", "oci-archive:"+archive+":ltsc", dst.Ref("loc", "ltsc")); code != 0 {
		t.Fatalf("localize from archive: exit %d: %s", code, stderr)
	}
	if skopeo, err := exec.LookPath("skopeo"); err == nil && runtime.GOOS != "windows" {
		// skopeo reads the archive ferry wrote (an index: list its raw form).
		if out, err := exec.Command(skopeo, "inspect", "--raw", "oci-archive:"+archive).Output(); err != nil || !strings.Contains(string(out), "10.0.20348.2461") {
			t.Errorf("skopeo inspect oci-archive: %v %s", err, out)
		}
	}
}

func TestOCIArchiveFailedCopyLeavesNothing(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	dir := t.TempDir()
	archive := filepath.Join(dir, "out.tar")
	// Without --foreign-allow the loopback foreign URLs are refused.
	if _, _, code := run(t, "copy", e.Reg.Ref("windows/servercore", "ltsc2019"), "oci-archive:"+archive); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("a failed copy left %v", entries)
	}
}

func writeTar(t *testing.T, p string, names ...string) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, n := range names {
		tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Size: 2, Mode: 0o644})
		tw.Write([]byte("{}"))
	}
	tw.Close()
	f.Close()
}

func TestOCIArchiveBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, evil := range []string{"../evil.txt", "/etc/evil", `..\..\evil.txt`, `C:\evil.txt`} {
		p := filepath.Join(dir, "evil.tar")
		writeTar(t, p, "index.json", evil)
		_, stderr, code := run(t, "digest", "oci-archive:"+p)
		if code != 1 || !strings.Contains(stderr, strings.ReplaceAll(evil, `\`, `\\`)) {
			t.Errorf("%q: exit %d, %s", evil, code, stderr)
		}
	}
	// Truncated: cut a good archive in the middle of a blob.
	e := fixture.MicrosoftLike(t)
	good := filepath.Join(dir, "good.tar")
	if _, stderr, code := run(t, "copy", e.Reg.Ref("windows/servercore", "ltsc2019"), "--foreign-allow", allowLoopback, "oci-archive:"+good); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	b, _ := os.ReadFile(good)
	cut := filepath.Join(dir, "cut.tar")
	os.WriteFile(cut, b[:len(b)/2], 0o644)
	if _, stderr, code := run(t, "digest", "oci-archive:"+cut); code != 1 || !strings.Contains(stderr, "truncated") {
		t.Errorf("truncated: exit %d, %s", code, stderr)
	}
	// Missing and malformed index.json.
	noidx := filepath.Join(dir, "noidx.tar")
	writeTar(t, noidx, "oci-layout")
	if _, stderr, code := run(t, "digest", "oci-archive:"+noidx); code != 1 || !strings.Contains(stderr, "index.json") {
		t.Errorf("no index.json: exit %d, %s", code, stderr)
	}
}
