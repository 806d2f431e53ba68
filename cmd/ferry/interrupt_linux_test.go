package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testkit/faults"
	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

// TestInterruptLeavesNothingHalfWritten sends SIGINT to the ferry binary
// while a copy trickles a layer through a slow proxy, for each kind of
// destination, and asserts that it stops within 2s with exit code 130,
// leaves no tag, index.json entry, archive or temporary file, and that a
// rerun completes.
func TestInterruptLeavesNothingHalfWritten(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ferry")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatal(err)
	}
	type dest struct {
		name string
		// make returns the destination argument and a check that nothing
		// of an interrupted copy is visible.
		make func(t *testing.T) (string, func(t *testing.T))
	}
	dests := []dest{
		{"registry", func(t *testing.T) (string, func(t *testing.T)) {
			reg := fixture.NewRegistry(t)
			return reg.Ref("mirror/app", "v1"), func(t *testing.T) {
				if reg.TagExists(t, "mirror/app", "v1") {
					t.Error("the interrupted copy left the tag")
				}
			}
		}},
		{"layout", func(t *testing.T) (string, func(t *testing.T)) {
			dir := filepath.Join(t.TempDir(), "layout")
			return "oci:" + dir + ":v1", func(t *testing.T) {
				if b, err := os.ReadFile(filepath.Join(dir, "index.json")); err == nil && bytes.Contains(b, []byte(`"v1"`)) {
					t.Errorf("the interrupted copy left an index.json entry: %s", b)
				}
				noTempFiles(t, dir)
			}
		}},
		{"oci-archive", func(t *testing.T) (string, func(t *testing.T)) {
			dir := t.TempDir()
			p := filepath.Join(dir, "app.tar")
			return "oci-archive:" + p + ":v1", func(t *testing.T) {
				if _, err := os.Stat(p); err == nil {
					t.Error("the interrupted copy left the archive")
				}
				noTempFiles(t, dir)
			}
		}},
		{"docker-archive", func(t *testing.T) (string, func(t *testing.T)) {
			dir := t.TempDir()
			p := filepath.Join(dir, "app.tar")
			return "docker-archive:" + p + ":app:v1", func(t *testing.T) {
				if _, err := os.Stat(p); err == nil {
					t.Error("the interrupted copy left the archive")
				}
				noTempFiles(t, dir)
			}
		}},
	}
	for _, d := range dests {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			src := fixture.NewRegistry(t)
			urls := fixture.NewURLServer(t)
			// Two layers of 256 KiB (about half of it compressible).
			src.Push(t, "win/app", "v1", urls.WindowsImage(t, fixture.ImageSpec{OSVersion: fixture.OSVersion1, Layers: 2, LayerSize: 256 << 10, Seed: 5}))
			p := faults.New(t, src.URL)
			p.Add(faults.Fault{Kind: faults.Trickle, Method: "GET", Path: "/blobs/", Rate: 1024, Times: -1}) // 100 KiB/s
			dst, clean := d.make(t)
			args := []string{"--progress", "none", "copy", p.Host + "/win/app:v1", dst}

			cmd := exec.Command(bin, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Interrupt once layer bytes are flowing.
			for deadline := time.Now().Add(10 * time.Second); p.Bytes("GET", "/blobs/") < 8<<10; {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("no blob bytes flowed: %s", stderr.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			start := time.Now()
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("ferry did not stop within 5s of SIGINT: %s", stderr.String())
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("ferry took %s to stop after SIGINT, want at most 2s", took)
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 130 {
				t.Errorf("exit %v, want 130: %s", err, stderr.String())
			}
			clean(t)

			// The rerun, at full speed, completes.
			p.Clear()
			out, err := exec.Command(bin, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("rerun: %v: %s", err, out)
			}
			if out, err := exec.Command(bin, "--progress", "none", "verify", "--deep", dst).CombinedOutput(); err != nil {
				t.Errorf("verify after the rerun: %v: %s", err, out)
			}
		})
	}
}

// noTempFiles fails the test if any file under dir has a temporary name.
func noTempFiles(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}
