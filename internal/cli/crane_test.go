package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

// lookTool finds a peer's binary on PATH or in GOPATH/bin, where .ci/run's
// go install puts it. The Windows build's tests (run under wine by
// .ci/wine-tests) skip: the peers there are Linux binaries.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	skipOnWindows(t, name)
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skipf("%s not installed (.ci/run installs it)", name)
	return ""
}

// skipOnWindows skips a test that runs peer, a Linux-only interop peer
// (skopeo, crane, distribution's registry binary), on Windows.
func skipOnWindows(t *testing.T, peer string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skipf("needs %s, a Linux peer: interop is tested by the Linux build", peer)
	}
}

func runTool(t *testing.T, tool string, args ...string) string {
	t.Helper()
	out, err := exec.Command(tool, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(tool), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestCraneInterop: crane pushes the OCI layout and the docker-archive
// ferry writes with the digest ferry read; ferry pushes the layout and
// the tarball crane writes, with the digest crane read.
func TestCraneInterop(t *testing.T) {
	crane := lookTool(t, "crane")
	reg := fixture.NewRegistry(t)
	urls := fixture.NewURLServer(t)
	img := urls.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.20348.1", ForeignLayers: 1, Layers: 2, Seed: 11})
	id := reg.Push(t, "win", "v1", img)
	cfgName, _ := img.ConfigName()
	dir := t.TempDir()
	src := reg.Ref("win", "v1")

	// ferry writes, crane reads.
	layout := filepath.Join(dir, "ferry-layout")
	archive := filepath.Join(dir, "ferry.tar")
	for _, dst := range []string{"oci:" + layout + ":v1", "docker-archive:" + archive} {
		if _, stderr, code := run(t, "copy", "--foreign-allow", allowLoopback, src, dst); code != 0 {
			t.Fatalf("ferry copy to %s: exit %d: %s", dst, code, stderr)
		}
	}
	runTool(t, crane, "push", "--allow-nondistributable-artifacts", layout, reg.Ref("crane-from-layout", "v1"))
	if _, _, d := reg.Manifest(t, "crane-from-layout", "v1"); d != id {
		t.Errorf("crane pushed ferry's layout as %s, want %s", d, id)
	}
	runTool(t, crane, "push", "--allow-nondistributable-artifacts", archive, reg.Ref("crane-from-archive", "v1"))
	if _, _, d := reg.Manifest(t, "crane-from-archive", "v1"); d != id {
		t.Errorf("crane pushed ferry's docker-archive as %s, want %s", d, id)
	}
	if cfg := strings.TrimSpace(runTool(t, crane, "config", reg.Ref("crane-from-archive", "v1"))); !strings.Contains(cfg, "10.0.20348.1") {
		t.Errorf("config after crane push: %s", cfg)
	}

	// crane writes, ferry reads. crane refuses foreign urls on private
	// addresses (this test's URL server), so this image has none.
	img = urls.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.20348.1", Layers: 2, Seed: 12})
	id = reg.Push(t, "win", "v2", img)
	cfgName, _ = img.ConfigName()
	src = reg.Ref("win", "v2")
	craneLayout := filepath.Join(dir, "crane-layout")
	craneTar := filepath.Join(dir, "crane.tar")
	runTool(t, crane, "pull", "--format", "oci", src, craneLayout)
	runTool(t, crane, "pull", "--format", "tarball", src, craneTar)
	dst := fixture.NewRegistry(t)
	if _, stderr, code := run(t, "push", "--foreign", "include", "--foreign-allow", allowLoopback, craneLayout, dst.Ref("from-crane-layout", "v1")); code != 0 {
		t.Fatalf("ferry push crane's layout: exit %d: %s", code, stderr)
	}
	if _, _, d := dst.Manifest(t, "from-crane-layout", "v1"); d != id {
		t.Errorf("ferry pushed crane's layout as %s, want %s", d, id)
	}
	if _, stderr, code := run(t, "push", "--foreign", "include", "--foreign-allow", allowLoopback, craneTar, dst.Ref("from-crane-tar", "v1")); code != 0 {
		t.Fatalf("ferry push crane's tarball: exit %d: %s", code, stderr)
	}
	raw, _, _ := dst.Manifest(t, "from-crane-tar", "v1")
	if !strings.Contains(string(raw), cfgName.String()) {
		t.Errorf("ferry pushed crane's tarball with another config: %s", raw)
	}
	fl, ol := fixture.Layers(t, img)
	for _, l := range append(fl, ol...) {
		if !strings.Contains(string(raw), l.Digest.String()) || !dst.BlobDigestOK(t, "from-crane-tar", l.Digest) {
			t.Errorf("layer %s missing from ferry's push of crane's tarball", l.Digest)
		}
	}
}
