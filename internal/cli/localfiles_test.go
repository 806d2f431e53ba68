package cli

import (
	"archive/tar"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/atomicfile"
	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

// The tests in this file are about local files as Windows treats them:
// paths with drives, replacing files, files held open, archive entry
// names. They run on every OS; .ci/wine-tests runs them as Windows does.

// twoImages pushes two different small Windows images (no foreign
// layers) and returns their references.
func twoImages(t *testing.T) [2]string {
	t.Helper()
	reg := fixture.NewRegistry(t)
	urls := fixture.NewURLServer(t)
	var refs [2]string
	for i := range refs {
		img := urls.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.20348.1", Layers: 1, LayerSize: 4 << 10, Seed: int64(70 + i)})
		tag := fmt.Sprintf("v%d", i)
		reg.Push(t, "win", tag, img)
		refs[i] = reg.Ref("win", tag)
	}
	return refs
}

// checkNoTemps fails the test for any temporary file ferry left in dir.
func checkNoTemps(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

// TestWindowsPathLocations copies to and reads back from locations
// written with the OS's absolute paths (a drive letter on Windows, also
// with forward slashes and the \\?\ prefix) and with relative paths.
func TestWindowsPathLocations(t *testing.T) {
	refs := twoImages(t)
	want := ferryOK(t, "digest", refs[0])
	dir := t.TempDir()
	if runtime.GOOS == "windows" && filepath.VolumeName(dir) == "" {
		t.Fatalf("temporary directory %s has no drive", dir)
	}
	t.Chdir(dir)
	sep := string(filepath.Separator)
	locs := []string{
		"oci:" + filepath.Join(dir, "abs-layout") + ":v1",
		"oci-archive:" + filepath.Join(dir, "abs.tar") + ":v1",
		"docker-archive:" + filepath.Join(dir, "abs-docker.tar") + ":win:v1",
		"dir:" + filepath.Join(dir, "abs-dir"),
		"oci:." + sep + "rel-layout:v1",
		"oci-archive:rel.tar:v1",
		"docker-archive:." + sep + "rel-docker.tar:win:v1",
		"oci:.." + sep + filepath.Base(dir) + sep + "up-layout:v1",
	}
	if runtime.GOOS == "windows" {
		locs = append(locs,
			"oci:"+filepath.ToSlash(filepath.Join(dir, "slash-layout"))+":v1", // C:/Users/...
			`oci:\\?\`+filepath.Join(dir, "long-layout")+":v1",
			"docker-archive:"+`\\?\`+filepath.Join(dir, "long-docker.tar")+":win:v1",
		)
	}
	for _, loc := range locs {
		if _, stderr, code := run(t, "copy", refs[0], loc); code != 0 {
			t.Errorf("copy to %s: exit %d: %s", loc, code, stderr)
			continue
		}
		if got := ferryOK(t, "digest", loc); got != want && !strings.HasPrefix(loc, "docker-archive:") {
			t.Errorf("digest of %s = %s, want %s", loc, got, want)
		}
	}
	for _, name := range []string{"abs-layout", "abs.tar", "abs-docker.tar", "abs-dir", "rel-layout", "rel.tar", "rel-docker.tar", "up-layout"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s not written where the location said: %v", name, err)
		}
	}
	checkNoTemps(t, dir)
}

// TestLocalWritesReplace writes one image and then another to the same
// layout tag, archive and dir: directory: index.json, the archive and
// manifest.json are replaced (a rename over an existing file, which
// Windows allows only with MoveFileEx's replace flag).
func TestLocalWritesReplace(t *testing.T) {
	refs := twoImages(t)
	dir := t.TempDir()
	for _, c := range []struct{ dst, fresh string }{
		{"oci:" + filepath.Join(dir, "layout") + ":v1", "oci:" + filepath.Join(dir, "fresh-layout") + ":v1"},
		{"oci-archive:" + filepath.Join(dir, "out.tar") + ":v1", "oci-archive:" + filepath.Join(dir, "fresh.tar") + ":v1"},
		{"docker-archive:" + filepath.Join(dir, "docker.tar") + ":win:v1", "docker-archive:" + filepath.Join(dir, "fresh-docker.tar") + ":win:v1"},
		{"dir:" + filepath.Join(dir, "dir"), "dir:" + filepath.Join(dir, "fresh-dir")},
	} {
		for _, ref := range refs {
			if _, stderr, code := run(t, "copy", ref, c.dst); code != 0 {
				t.Fatalf("copy %s to %s: exit %d: %s", ref, c.dst, code, stderr)
			}
		}
		ferryOK(t, "copy", refs[1], c.fresh)
		if got, want := ferryOK(t, "digest", c.dst), ferryOK(t, "digest", c.fresh); got != want {
			t.Errorf("%s after the second copy: digest %s, want the second image's %s", c.dst, got, want)
		}
	}
	checkNoTemps(t, dir)
}

// TestLocalWriteOverOpenFile replaces an archive, and a layout's
// index.json, while another handle holds it open. Windows cannot replace
// an open file: the copy fails saying so, and the old file is left whole.
// Elsewhere the copy succeeds.
func TestLocalWriteOverOpenFile(t *testing.T) {
	refs := twoImages(t)
	dir := t.TempDir()
	for _, c := range []struct{ loc, held string }{
		{"oci-archive:" + filepath.Join(dir, "out.tar") + ":v1", filepath.Join(dir, "out.tar")},
		{"docker-archive:" + filepath.Join(dir, "docker.tar") + ":win:v1", filepath.Join(dir, "docker.tar")},
		{"oci:" + filepath.Join(dir, "layout") + ":v1", filepath.Join(dir, "layout", "index.json")},
	} {
		ferryOK(t, "copy", refs[0], c.loc)
		old := ferryOK(t, "digest", c.loc)
		f, err := os.Open(c.held)
		if err != nil {
			t.Fatal(err)
		}
		_, stderr, code := run(t, "copy", refs[1], c.loc)
		f.Close()
		got := ferryOK(t, "digest", c.loc)
		if runtime.GOOS != "windows" {
			if code != 0 || got == old {
				t.Errorf("%s: exit %d, digest %s (old %s): %s", c.loc, code, got, old, stderr)
			}
			continue
		}
		if code != 1 || !strings.Contains(stderr, "open in another program") || !strings.Contains(stderr, filepath.Base(c.held)) {
			t.Errorf("%s held open: exit %d, want 1 naming the file as open elsewhere: %s", c.loc, code, stderr)
		}
		if got != old {
			t.Errorf("%s: digest %s after the refused replace, want the old %s", c.loc, got, old)
		}
	}
	checkNoTemps(t, dir)
}

// TestArchiveEntryTraversalRefused reads oci-archive and docker-archive
// files holding an entry whose name would escape on Windows or on Linux:
// ferry copy refuses them, naming the entry, and writes nothing.
func TestArchiveEntryTraversalRefused(t *testing.T) {
	dir := t.TempDir()
	for i, evil := range []string{`..\..\evil.txt`, `C:\evil.txt`, `C:evil.txt`, `\\server\share\evil.txt`, `blobs\sha256\x`, "../evil.txt", "/evil.txt"} {
		for _, c := range []struct{ transport, other string }{
			{"oci-archive", "index.json"},
			{"docker-archive", "manifest.json"},
		} {
			p := filepath.Join(dir, fmt.Sprintf("%s-%d.tar", c.transport, i))
			writeEvilTar(t, p, c.other, evil)
			out := filepath.Join(dir, "out", fmt.Sprintf("%s-%d", c.transport, i))
			_, stderr, code := run(t, "copy", c.transport+":"+p, "oci:"+out+":v1")
			if code != 1 || !strings.Contains(stderr, "unsafe path") || !strings.Contains(stderr, fmt.Sprintf("%q", evil)) {
				t.Errorf("%s with entry %q: exit %d, want 1 naming the entry: %s", c.transport, evil, code, stderr)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("%s with entry %q: the copy wrote %s", c.transport, evil, out)
			}
		}
	}
	_ = filepath.WalkDir(filepath.Dir(dir), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "evil.txt" {
			t.Errorf("%s written", p)
		}
		return nil
	})
}

// writeEvilTar writes a tar holding a plausible file named other and then
// the entry evil.
func writeEvilTar(t *testing.T, p, other, evil string) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, name := range []string{other, evil} {
		body := "{}"
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestFailedPullLeavesNoLayout: a pull into a layout directory it created
// that fails (here a foreign layer whose URL answers 404) removes that
// directory again, rather than leaving blobs without index.json, which
// push then calls "not an OCI layout" (issue 18 item 12). A directory that
// was there before keeps what it held.
func TestFailedPullLeavesNoLayout(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	e.URLs.Fail("/", 404, -1, "")
	src := e.Reg.Ref(fixture.Repo, fixture.SingleTag)
	fresh := filepath.Join(t.TempDir(), "new-layout")
	if _, stderr, code := run(t, "pull", "--foreign", "include", "--foreign-allow", allowLoopback, "--format", "oci", src, fresh); code != 1 {
		t.Fatalf("pull: exit %d, want 1: %s", code, stderr)
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		entries, _ := filepath.Glob(filepath.Join(fresh, "*", "*", "*"))
		t.Errorf("the failed pull left %s (%v): %v", fresh, err, entries)
	}
	existing := t.TempDir()
	os.WriteFile(filepath.Join(existing, "notes.txt"), []byte("mine"), 0o644)
	run(t, "pull", "--foreign", "include", "--foreign-allow", allowLoopback, "--format", "oci", src, existing)
	if _, err := os.Stat(filepath.Join(existing, "notes.txt")); err != nil {
		t.Errorf("a failed pull into an existing directory removed its files: %v", err)
	}
}

// TestStaleTemporariesGoOnNextWrite: the temporary files a killed write
// left beside an archive, in a dir: image or in a layout are removed by
// the next write there once they are older than atomicfile.StaleAge; a
// fresh one, maybe a concurrent writer's, stays (issue 18 item 12).
func TestStaleTemporariesGoOnNextWrite(t *testing.T) {
	refs := twoImages(t)
	dir := t.TempDir()
	old := time.Now().Add(-2 * atomicfile.StaleAge)
	dsts := []string{"oci-archive:" + filepath.Join(dir, "a.tar"), "docker-archive:" + filepath.Join(dir, "d.tar"),
		"dir:" + filepath.Join(dir, "img"), "oci:" + filepath.Join(dir, "layout") + ":v1"}
	for _, dst := range dsts {
		if _, stderr, code := run(t, "copy", refs[1], dst); code != 0 {
			t.Fatalf("copy to %s: exit %d: %s", dst, code, stderr)
		}
	}
	stale := []string{
		filepath.Join(dir, ".a.tar.tmp-123"),
		filepath.Join(dir, ".d.tar.tmp-456"),
		filepath.Join(dir, "img", ".tmp-0123456789ab-7"),
		filepath.Join(dir, "layout", "blobs", "sha256", ".tmp-0123456789ab-8"),
	}
	fresh := filepath.Join(dir, ".a.tar.tmp-789")
	for _, p := range append(stale, fresh) {
		if err := os.WriteFile(p, make([]byte, 4096), 0o644); err != nil {
			t.Fatal(err)
		}
		if p != fresh {
			os.Chtimes(p, old, old)
		}
	}
	for _, dst := range dsts {
		if _, stderr, code := run(t, "copy", refs[0], dst); code != 0 {
			t.Fatalf("copy to %s: exit %d: %s", dst, code, stderr)
		}
	}
	for _, p := range stale {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("stale %s stayed: %v", p, err)
		}
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a fresh temporary file was removed: %v", err)
	}
}
