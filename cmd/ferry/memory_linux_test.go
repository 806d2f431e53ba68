package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/server"
	"github.com/ferry-dev/ferry/store/registry"
)

// randReader yields n pseudo-random bytes without holding them.
type randReader struct {
	rng *rand.ChaCha8
	n   int64
}

func (r *randReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	n, _ := r.rng.Read(p)
	r.n -= int64(n)
	return n, nil
}

func newRand(seed byte, n int64) *randReader {
	var s [32]byte
	s[0] = seed
	return &randReader{rng: rand.NewChaCha8(s), n: n}
}

// TestCopyMemoryFlat copies an image with a 1 GiB layer between two
// registries on loopback with the ferry binary, pulls it into a
// docker-archive and an oci-archive and pushes the docker-archive back,
// and asserts that ferry's peak RSS stays under 100 MiB each time: blobs
// stream, never whole in memory. FERRY_MEMTEST_MIB changes the layer size.
func TestCopyMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 1 GiB; skipped with -short")
	}
	size := int64(1 << 30)
	if s := os.Getenv("FERRY_MEMTEST_MIB"); s != "" {
		mib, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		size = int64(mib) << 20
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := t.TempDir()
	srv, err := server.Start(ctx, "127.0.0.1:0", server.WithRoot(filepath.Join(dir, "root")))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// A second registry, so that the layer really streams through ferry
	// instead of being mounted.
	dstSrv, err := server.Start(ctx, "127.0.0.1:0", server.WithRoot(filepath.Join(dir, "root2")))
	if err != nil {
		t.Fatal(err)
	}
	defer dstSrv.Close()

	// Push the layer, streaming: hash first, then upload.
	h := sha256.New()
	if _, err := io.Copy(h, newRand(1, size)); err != nil {
		t.Fatal(err)
	}
	layer := v1.Descriptor{MediaType: types.DockerLayer, Size: size, Digest: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}}
	cfgRaw := []byte(`{"architecture":"amd64","os":"windows","os.version":"10.0.17763.1","rootfs":{"type":"layers","diff_ids":["` + layer.Digest.String() + `"]}}`)
	cfg := descOf(types.DockerConfigJSON, cfgRaw)
	mf := v1.Manifest{SchemaVersion: 2, MediaType: types.DockerManifestSchema2, Config: cfg, Layers: []v1.Descriptor{layer}}
	mfRaw, _ := json.Marshal(mf)
	mfDesc := descOf(types.DockerManifestSchema2, mfRaw)

	ref, _ := name.ParseReference(srv.Host() + "/big/src:v1")
	repo, err := registry.Open(ctx, ref, registry.WithPush())
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.PushBlob(ctx, layer, newRand(1, size)); err != nil {
		t.Fatal(err)
	}
	if err := repo.PushBlob(ctx, cfg, bytes.NewReader(cfgRaw)); err != nil {
		t.Fatal(err)
	}
	if err := repo.Tag(ctx, mfDesc, mfRaw); err != nil {
		t.Fatal(err)
	}

	bin := filepath.Join(dir, "ferry")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatal(err)
	}
	// ferry runs the binary and returns its stdout, failing the test when
	// its peak RSS exceeds 100 MiB.
	ferry := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--progress", "none"}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		peak := watchPeak(cmd.Process.Pid, bin)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("ferry %v: %v\n%s", args, err, stderr.String())
		}
		peakRSS := peak()
		t.Logf("ferry %s: %d MiB moved; peak RSS %.1f MiB", args[0], size>>20, float64(peakRSS)/(1<<20))
		if peakRSS > 100<<20 {
			t.Errorf("ferry %v: peak RSS %d MiB exceeds 100 MiB", args, peakRSS>>20)
		}
		return stdout.String()
	}
	out := ferry("copy", srv.Host()+"/big/src:v1", dstSrv.Host()+"/other/dst:v1")
	want := dstSrv.Host() + "/other/dst:v1@" + mfDesc.Digest.String() + "\n"
	if out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}
	// Archive writes and reads stream too: pull into a docker-archive and
	// an oci-archive, push the docker-archive back.
	for _, format := range []string{"docker-archive", "oci-archive"} {
		archive := filepath.Join(dir, format+".tar")
		if out := ferry("pull", "--format", format, srv.Host()+"/big/src:v1", archive); !bytes.Contains([]byte(out), []byte(mfDesc.Digest.String())) {
			t.Errorf("pull to %s printed %q", format, out)
		}
		if format == "docker-archive" {
			if out := ferry("push", archive, dstSrv.Host()+"/from/archive:v1"); !bytes.Contains([]byte(out), []byte(mfDesc.Digest.String())) {
				t.Errorf("push from %s printed %q", format, out)
			}
		}
		os.Remove(archive)
	}
	// The destination really holds the layer.
	dst, _ := name.ParseReference(dstSrv.Host() + "/other/dst:v1")
	drepo, err := registry.Open(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := drepo.HasBlob(ctx, layer); err != nil || !ok {
		t.Errorf("layer missing at destination: %v", err)
	}
}

func descOf(mt types.MediaType, b []byte) v1.Descriptor {
	d, n, _ := v1.SHA256(bytes.NewReader(b))
	return v1.Descriptor{MediaType: mt, Size: n, Digest: d}
}

// watchPeak polls a process's VmHWM until the returned function is called
// (after the process ended) and returns the highest value seen, in bytes.
// rusage would not do: Linux carries the parent's high-water mark (this
// test process, which runs the registries) into the child across exec.
// Readings before the child has exec'd the binary (when /proc/PID still
// shows the parent's memory) are ignored.
func watchPeak(pid int, bin string) func() int64 {
	done := make(chan struct{})
	result := make(chan int64, 1)
	go func() {
		var hwm int64
		for {
			exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil && exe == bin {
				for _, line := range strings.Split(string(b), "\n") {
					if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
						kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
						hwm = max(hwm, kb<<10)
					}
				}
			}
			select {
			case <-done:
				result <- hwm
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() int64 { close(done); return <-result }
}
