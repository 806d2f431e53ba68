package main

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestReleaseIsReproducible runs the release twice for linux/amd64 and
// windows/amd64 (all six targets cost CI too much time cold: about four
// minutes of two cores per target) and checks that both runs write the
// same SHA256SUMS, that SHA256SUMS matches the files, that each archive
// holds ferry, its completions and man pages, and that each SBOM names
// ferry's version and go-containerregistry. With wine prepared by
// .ci/wine-tests, the zip's ferry.exe runs version.
func TestReleaseIsReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ferry twice for two platforms")
	}
	targets := []string{"linux/amd64", "windows/amd64"}
	var dirs []string
	for range 2 {
		dir := filepath.Join(t.TempDir(), "out")
		if err := release(context.Background(), options{snapshot: true, out: dir, targets: targets}); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	a, err := os.ReadFile(filepath.Join(dirs[0], "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dirs[1], "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Errorf("two releases of one commit differ:\n%s\n%s", a, b)
	}

	sums := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(a)))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", sc.Text())
		}
		sums[name] = sum
	}
	entries, err := os.ReadDir(dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	var archives, sboms []string
	for _, e := range entries {
		n := e.Name()
		if n == "SHA256SUMS" {
			continue
		}
		got, err := fileSHA256(filepath.Join(dirs[0], n))
		if err != nil {
			t.Fatal(err)
		}
		if sums[n] != got {
			t.Errorf("%s: sha256 %s, SHA256SUMS says %q", n, got, sums[n])
		}
		delete(sums, n)
		switch {
		case strings.HasSuffix(n, ".sbom.cdx.json"):
			sboms = append(sboms, n)
		default:
			archives = append(archives, n)
		}
	}
	if len(sums) > 0 {
		t.Errorf("SHA256SUMS lists files that are not there: %v", sums)
	}
	if len(archives) != 2 || len(sboms) != 2 {
		t.Fatalf("archives %v, SBOMs %v; want one of each per target", archives, sboms)
	}

	for _, n := range archives {
		names := archiveNames(t, filepath.Join(dirs[0], n))
		exe := "ferry"
		if strings.HasSuffix(n, ".zip") {
			exe = "ferry.exe"
		}
		for _, want := range []string{exe, "README.md", "CHANGELOG.md", "completions/ferry.bash", "completions/_ferry", "completions/ferry.fish", "completions/ferry.ps1", "man/man1/ferry.1", "man/man1/ferry-copy.1"} {
			if !slices.Contains(names, want) {
				t.Errorf("%s has no %s (has %v)", n, want, names)
			}
		}
		if !slices.IsSorted(names) {
			t.Errorf("%s: entries not sorted: %v", n, names)
		}
	}

	for _, n := range sboms {
		raw, err := os.ReadFile(filepath.Join(dirs[0], n))
		if err != nil {
			t.Fatal(err)
		}
		var bom cdxBOM
		if err := json.Unmarshal(raw, &bom); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if bom.BOMFormat != "CycloneDX" || bom.Metadata.Component.Name != "github.com/ferry-dev/ferry" ||
			!strings.Contains(n, strings.TrimPrefix(bom.Metadata.Component.Version, "v")) {
			t.Errorf("%s: format %q, component %+v", n, bom.BOMFormat, bom.Metadata.Component)
		}
		found := false
		for _, c := range bom.Components {
			found = found || c.Name == "github.com/google/go-containerregistry" && c.Version != "" && len(c.Hashes) == 1
		}
		if !found {
			t.Errorf("%s does not list github.com/google/go-containerregistry with its version and hash", n)
		}
	}

	runUnderWine(t, filepath.Join(dirs[0], archives[slices.IndexFunc(archives, func(s string) bool { return strings.HasSuffix(s, ".zip") })]))
}

// archiveNames lists a tar.gz's or zip's entries in order.
func archiveNames(t *testing.T, path string) []string {
	t.Helper()
	var names []string
	if strings.HasSuffix(path, ".zip") {
		zr, err := zip.OpenReader(path)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		for _, f := range zr.File {
			if len(f.Extra) != 0 {
				t.Errorf("%s: %s has an extra field (timestamps)", path, f.Name)
			}
			names = append(names, f.Name)
		}
		return names
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" {
			t.Errorf("%s: %s owned by %d/%d %q", path, h.Name, h.Uid, h.Gid, h.Uname)
		}
		names = append(names, h.Name)
	}
	return names
}

// runUnderWine runs the zip's ferry.exe version under wine64 with the
// prefix .ci/wine-tests prepares (its bcryptprimitives shim is what Go's
// runtime needs on wine 8); without that prefix it says so and returns.
func runUnderWine(t *testing.T, zipPath string) {
	wine := "/usr/lib/wine/wine64"
	prefix := os.Getenv("FERRY_WINEPREFIX")
	if prefix == "" {
		prefix = filepath.Join(os.TempDir(), "ferry-wineprefix")
	}
	if _, err := os.Stat(filepath.Join(prefix, "drive_c/windows/system32/bcryptprimitives.dll")); err != nil {
		t.Logf("no wine prefix prepared by .ci/wine-tests at %s: ferry.exe not run", prefix)
		return
	}
	if _, err := os.Stat(wine); err != nil {
		t.Logf("no %s: ferry.exe not run", wine)
		return
	}
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	exe := filepath.Join(t.TempDir(), "ferry.exe")
	in, err := zr.Open("ferry.exe")
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(wine, exe, "version", "--json")
	cmd.Env = append(os.Environ(), "WINEPREFIX="+prefix, "WINEDEBUG=-all", "DISPLAY=")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("wine ferry.exe version: %v", err)
	}
	var info struct{ Version, Platform string }
	if err := json.Unmarshal(out, &info); err != nil || info.Platform != "windows/amd64" || info.Version == "" || info.Version == "devel" {
		t.Errorf("wine ferry.exe version --json: %s (%v)", out, err)
	}
}
