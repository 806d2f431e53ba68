package main

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// distEnv names a release directory of every target, written by CI's
// release run of the commit under test (.ci/run), which the tests check
// rather than build the targets again.
const distEnv = "FERRY_RELEASE_DIST"

// TestReleaseIsReproducible builds linux/amd64 and windows/amd64 and
// checks that every file is the same as in another release of the
// commit: $FERRY_RELEASE_DIST (CI's release of all six targets) or,
// without it, a second run here (all six targets cost too much time cold:
// about 2.5 minutes of two cores per target). Then it checks that release
// — all six targets from CI, the two otherwise — with checkRelease. With
// wine prepared by .ci/wine-tests, the zip's ferry.exe runs version.
func TestReleaseIsReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ferry twice for two platforms")
	}
	targets := []string{"linux/amd64", "windows/amd64"}
	first, want := os.Getenv(distEnv), allTargets
	if first == "" {
		first, want = runRelease(t, targets), targets
	} else {
		t.Logf("comparing with the release in $%s=%s", distEnv, first)
	}
	second := runRelease(t, targets)
	a, b := sumsOf(t, first), sumsOf(t, second)
	for name, sum := range b {
		if a[name] != sum {
			t.Errorf("two releases of one commit differ: %s is %s, then %q", name, sum, a[name])
		}
	}
	if len(b) != 2*len(targets) {
		t.Errorf("the release of %v wrote %v", targets, b)
	}
	checkRelease(t, first, want)
	zips, _ := filepath.Glob(filepath.Join(second, "*_windows_amd64.zip"))
	if len(zips) != 1 {
		t.Fatalf("no windows/amd64 zip: %v", zips)
	}
	runUnderWine(t, zips[0])
}

// TestFailedReleaseLeavesOutEmpty: a release that fails after a target's
// archive and SBOM were written leaves --out empty (nothing that no
// SHA256SUMS lists), so that a rerun into it is not refused.
func TestFailedReleaseLeavesOutEmpty(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ferry")
	}
	afterTarget = func(string) error { return errors.New("injected failure") }
	defer func() { afterTarget = nil }()
	dir := filepath.Join(t.TempDir(), "out")
	err := release(context.Background(), options{snapshot: true, out: dir, targets: []string{"linux/amd64"}})
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("release with a failure after the first target: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 0 {
		t.Errorf("a failed release left %v in --out", names)
	}
}

// runRelease releases targets of HEAD in snapshot mode into a new
// directory.
func runRelease(t *testing.T, targets []string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "out")
	if err := release(context.Background(), options{snapshot: true, out: dir, targets: targets}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sumsOf reads dir's SHA256SUMS.
func sumsOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	sums, err := readSums(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	return sums
}

// checkRelease checks a release directory of targets: SHA256SUMS matches
// its files and lists them all, there is one archive (zip for Windows,
// tar.gz otherwise) and one SBOM per target, each archive holds ferry, its
// completions and man pages, sorted, and each SBOM names ferry's version
// and go-containerregistry.
func checkRelease(t *testing.T, dir string, targets []string) {
	t.Helper()
	sums := sumsOf(t, dir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var archives, sboms []string
	for _, e := range entries {
		n := e.Name()
		if n == "SHA256SUMS" {
			continue
		}
		got, err := fileSHA256(filepath.Join(dir, n))
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
	if len(archives) != len(targets) || len(sboms) != len(targets) {
		t.Fatalf("archives %v, SBOMs %v; want one of each per target of %v", archives, sboms, targets)
	}
	for _, target := range targets {
		suffix := "_" + strings.ReplaceAll(target, "/", "_") + ".tar.gz"
		if strings.HasPrefix(target, "windows/") {
			suffix = strings.TrimSuffix(suffix, ".tar.gz") + ".zip"
		}
		if !slices.ContainsFunc(archives, func(n string) bool { return strings.HasSuffix(n, suffix) }) {
			t.Errorf("no archive ferry_VERSION%s among %v", suffix, archives)
		}
	}

	for _, n := range archives {
		names := archiveNames(t, filepath.Join(dir, n))
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
		raw, err := os.ReadFile(filepath.Join(dir, n))
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
