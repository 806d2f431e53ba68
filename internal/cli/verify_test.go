package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/server"
)

// TestVerifyGoodEverywhere: a good image verifies (exit 0, one line) in a
// registry, an OCI layout, an oci-archive and a docker-archive, shallow
// and deep.
func TestVerifyGoodEverywhere(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	dir := t.TempDir()
	locs := []string{e.Reg.Ref(fixture.Repo, fixture.IndexTag)}
	for _, dst := range []string{"oci:" + dir + "/layout:ltsc", "oci-archive:" + dir + "/a.tar", "docker-archive:" + dir + "/d.tar"} {
		args := []string{"copy", "--foreign-allow", allowLoopback}
		if strings.HasPrefix(dst, "docker-archive:") {
			args = append(args, "--platform", "ltsc2019")
		}
		if _, stderr, code := run(t, append(args, e.Reg.Ref(fixture.Repo, fixture.IndexTag), dst)...); code != 0 {
			t.Fatalf("copy to %s: exit %d: %s", dst, code, stderr)
		}
		locs = append(locs, dst)
	}
	for _, loc := range locs {
		for _, deep := range []bool{false, true} {
			args := []string{"verify", "--foreign-allow", allowLoopback}
			if deep {
				args = append(args, "--deep")
			}
			out, stderr, code := run(t, append(args, loc)...)
			if code != 0 || strings.Count(out, "\n") != 1 {
				t.Errorf("verify %s (deep %v): exit %d, %q %s", loc, deep, code, out, stderr)
			}
			if strings.HasPrefix(loc, e.Reg.Host) && !strings.Contains(out, "4 not hosted") {
				t.Errorf("verify %s: the registry lacks the 4 foreign layers, and says %q", loc, out)
			}
			if strings.HasPrefix(loc, "oci:") && !strings.Contains(out, "0 not hosted, 4 hosted") {
				t.Errorf("verify %s: the layout holds the 4 foreign layers, and says %q", loc, out)
			}
		}
	}
}

// TestVerifyFindsDamage: a blob deleted from a registry root, a truncated
// blob file in a layout, and (deep only) a changed byte of the same size
// are each reported with their digest and exit 1; --repair restores the
// registry's.
func TestVerifyFindsDamage(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	root := filepath.Join(t.TempDir(), "root")
	srv, err := server.Start(context.Background(), "127.0.0.1:0", server.WithRoot(root))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	src := e.Reg.Ref(fixture.Repo, fixture.SingleTag)
	dst := srv.Host() + "/mirror:v1"
	if _, stderr, code := run(t, "copy", "--foreign", "localize", "--foreign-allow", allowLoopback, src, dst); code != 0 {
		t.Fatalf("copy: exit %d: %s", code, stderr)
	}
	victim := e.Blobs[0]
	if err := os.Remove(filepath.Join(root, "docker/registry/v2/blobs/sha256", victim.Hex[:2], victim.Hex, "data")); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := run(t, "verify", dst)
	if code != 1 || !strings.Contains(out, victim.String()) || !strings.Contains(out, "missing") {
		t.Errorf("deleted blob: exit %d, %q %s", code, out, stderr)
	}
	out, stderr, code = run(t, "verify", "--repair", "--from", src, "--foreign", "localize", "--foreign-allow", allowLoopback, dst)
	if code != 0 || !strings.Contains(stderr, "copied 1 blob,") {
		t.Errorf("repair: exit %d, %q %s", code, out, stderr)
	}

	layout := t.TempDir()
	if _, stderr, code := run(t, "copy", "--foreign-allow", allowLoopback, src, "oci:"+layout+":v1"); code != 0 {
		t.Fatalf("copy: exit %d: %s", code, stderr)
	}
	blobFile := filepath.Join(layout, "blobs/sha256", victim.Hex)
	b, _ := os.ReadFile(blobFile)
	b[len(b)/2] ^= 0xff
	os.Chmod(blobFile, 0o644)
	if err := os.WriteFile(blobFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _, code := run(t, "verify", "oci:"+layout+":v1"); code != 0 {
		t.Errorf("a same-size change is invisible without --deep: exit %d %q", code, out)
	}
	out, _, code = run(t, "verify", "--deep", "oci:"+layout+":v1")
	if code != 1 || !strings.Contains(out, victim.String()) || !strings.Contains(out, "digest-mismatch") {
		t.Errorf("changed byte, --deep: exit %d, %q", code, out)
	}
	if err := os.WriteFile(blobFile, b[:len(b)-10], 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code = run(t, "verify", "oci:"+layout+":v1")
	if code != 1 || !strings.Contains(out, victim.String()) || !strings.Contains(out, "size-mismatch") {
		t.Errorf("truncated blob: exit %d, %q", code, out)
	}
	out, _, code = run(t, "verify", "--json", "oci:"+layout+":v1")
	if code != 1 || !strings.Contains(out, `"status": "size-mismatch"`) {
		t.Errorf("--json: exit %d, %q", code, out)
	}
	if _, _, code := run(t, "verify", "--repair", "oci:"+layout+":v1"); code != 2 {
		t.Errorf("--repair without --from: exit %d, want 2", code)
	}
}

// TestVerifyDeepDiffIDs: a config whose diff_id does not match its layer
// passes the shallow check and fails the deep one.
func TestVerifyDeepDiffIDs(t *testing.T) {
	reg := fixture.NewRegistry(t)
	urls := fixture.NewURLServer(t)
	img := urls.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.17763.1", Layers: 2, Seed: 4})
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.RootFS.DiffIDs[1] = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	bad, err := mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "bad", "v1", bad)
	if out, _, code := run(t, "verify", reg.Ref("bad", "v1")); code != 0 {
		t.Errorf("shallow: exit %d %q", code, out)
	}
	out, _, code := run(t, "verify", "--deep", reg.Ref("bad", "v1"))
	if code != 1 || !strings.Contains(out, "diff-id-mismatch") || !strings.Contains(out, strings.Repeat("ab", 32)) {
		t.Errorf("deep: exit %d %q", code, out)
	}
}

// TestTimingFlags: negative durations are bad usage (exit 2), and verify
// takes the global timing flags like copy does.
func TestTimingFlags(t *testing.T) {
	for _, args := range [][]string{{"--stall-timeout", "-1s", "digest", "x"}, {"--retry-delay", "-5ms", "verify", "x"}} {
		if _, stderr, code := run(t, args...); code != 2 || !strings.Contains(stderr, "must not be negative") {
			t.Errorf("%v: exit %d: %s", args, code, stderr)
		}
	}
	e := fixture.MicrosoftLike(t)
	if out, stderr, code := run(t, "--stall-timeout", "5s", "--retry-delay", "10ms", "verify", "--deep", "--foreign-allow", allowLoopback, e.Reg.Ref(fixture.Repo, fixture.SingleTag)); code != 0 {
		t.Errorf("verify with timing flags: exit %d %q %s", code, out, stderr)
	}
}

// TestVerifyDeepGzipBomb: a layer that decompresses to far more than its
// size (96 MiB of zeros in about 100 KB) is reported too-large once the
// limit is passed, rather than decompressed to the end; --max-expansion 0
// lifts the limit (issue 18 item 10).
func TestVerifyDeepGzipBomb(t *testing.T) {
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	zeros := make([]byte, 1<<20)
	for range 96 {
		zw.Write(zeros)
	}
	zw.Close()
	base, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	bomb, err := mutate.AppendLayers(base, static.NewLayer(gz.Bytes(), types.DockerLayer))
	if err != nil {
		t.Fatal(err)
	}
	reg := fixture.NewRegistry(t)
	reg.Push(t, "bomb", "v1", bomb)
	out, stderr, code := run(t, "verify", "--deep", reg.Ref("bomb", "v1"))
	if code != 1 || !strings.Contains(out, "too-large") || !strings.Contains(stderr, "--max-expansion") {
		t.Errorf("verify --deep: exit %d, %q %s", code, out, stderr)
	}
	out, _, _ = run(t, "verify", "--deep", "--max-expansion", "0", reg.Ref("bomb", "v1"))
	if strings.Contains(out, "too-large") {
		t.Errorf("--max-expansion 0 still limits: %q", out)
	}
	if _, _, code := run(t, "verify", "--max-expansion", "-1", reg.Ref("bomb", "v1")); code != 2 {
		t.Errorf("negative --max-expansion: exit %d, want 2", code)
	}
}

// TestVerifyRepairsWrongBytes: a blob of the right size with wrong bytes,
// which only --deep sees, is written again by --repair (by digest) rather
// than skipped as already there (issue 18 item 15).
func TestVerifyRepairsWrongBytes(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	src := e.Reg.Ref(fixture.Repo, fixture.SingleTag)
	layout := "oci:" + t.TempDir() + ":v1"
	if _, stderr, code := run(t, "copy", "--foreign-allow", allowLoopback, src, layout); code != 0 {
		t.Fatalf("copy: exit %d: %s", code, stderr)
	}
	victim := e.Blobs[0]
	blobFile := filepath.Join(strings.TrimSuffix(strings.TrimPrefix(layout, "oci:"), ":v1"), "blobs/sha256", victim.Hex)
	b, err := os.ReadFile(blobFile)
	if err != nil {
		t.Fatal(err)
	}
	good := bytes.Clone(b)
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(blobFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := run(t, "verify", "--deep", "--repair", "--from", src, "--foreign-allow", allowLoopback, layout)
	if code != 0 || !strings.Contains(stderr, "copied 1 blob,") {
		t.Errorf("repair: exit %d, %q %s", code, out, stderr)
	}
	if b, _ := os.ReadFile(blobFile); !bytes.Equal(b, good) {
		t.Error("the damaged blob was not restored")
	}
}
