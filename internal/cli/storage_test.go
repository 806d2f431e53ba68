package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/server"
	"github.com/ferry-dev/ferry/store/regroot"
)

// referenceRegistry serves root with distribution's own registry binary
// (installed by .ci/run; the test is skipped without it) until the test
// ends, and returns its host:port.
func referenceRegistry(t *testing.T, root string) string {
	t.Helper()
	host, _ := startReferenceRegistry(t, lookTool(t, "registry"), root)
	return host
}

// startReferenceRegistry runs distribution's registry binary on a free
// loopback port serving root, and returns its host:port and a function
// that stops it (also called when the test ends). Its configuration
// accepts manifests whose foreign layers point at http URLs (the
// fixture's URL server), so images can be pushed with --foreign keep.
func startReferenceRegistry(t *testing.T, bin, root string) (string, func()) {
	t.Helper()
	// The binary takes an address, not a listener: find a free port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(t.TempDir(), "config.yml")
	mustWrite(t, cfg, fmt.Appendf(nil, `version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: %q}
  delete: {enabled: true}
http: {addr: %q}
validation:
  manifests:
    urls:
      allow: ['^https?://']
`, root, addr))
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "serve", cfg)
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			_ = cmd.Wait()
		})
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(15 * time.Second); ; {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return addr, stop
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("reference registry did not start on %s: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// ferryServer serves root with the embedded registry until the test ends
// (or the returned stop is called).
func ferryServer(t *testing.T, root string, opts ...server.Option) (host string, stop func()) {
	t.Helper()
	s, err := server.Start(context.Background(), "127.0.0.1:0", append([]server.Option{server.WithRoot(root)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = s.Close()
			_ = s.Wait()
		})
	}
	t.Cleanup(stop)
	return s.Host(), stop
}

// pullAndVerify copies ref (foreign layers included from their URLs) into
// a fresh OCI layout and checks that every blob there hashes to its name
// and that the image's digest is want.
func pullAndVerify(t *testing.T, ref string, want v1.Hash) {
	t.Helper()
	dir := t.TempDir()
	if _, stderr, code := run(t, "copy", "--foreign", "include", "--foreign-allow", allowLoopback, ref, "oci:"+dir+":pulled"); code != 0 {
		t.Fatalf("pull %s: exit %d: %s", ref, code, stderr)
	}
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("index.json %s: %v", b, err)
	}
	if got := idx.Manifests[0].Digest; got != want {
		t.Errorf("pulled %s: digest %s, want %s", ref, got, want)
	}
	n := 0
	err = filepath.WalkDir(filepath.Join(dir, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h, _, err := v1.SHA256(f)
		if err != nil {
			return err
		}
		if h.Hex != d.Name() {
			t.Errorf("pulled blob %s hashes to %s", d.Name(), h)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Index, two manifests, two configs, two ordinary and four foreign
	// layers.
	if n != 11 {
		t.Errorf("pulled %d blobs, want 11", n)
	}
}

func TestStorageImportServedByBothRegistries(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	// The OCI layout source, foreign layers included.
	layout := t.TempDir()
	if _, stderr, code := run(t, "copy", "--foreign-allow", allowLoopback, e.Reg.Ref(fixture.Repo, fixture.IndexTag), "oci:"+layout+":ltsc"); code != 0 {
		t.Fatalf("layout: exit %d: %s", code, stderr)
	}
	for _, tc := range []struct{ name, src, policy string }{
		{"layout-keep", "oci:" + layout + ":ltsc", "keep"},
		{"layout-include", "oci:" + layout + ":ltsc", "include"},
		{"registry-keep", e.Reg.Ref(fixture.Repo, fixture.IndexTag), "keep"},
		{"registry-include", e.Reg.Ref(fixture.Repo, fixture.IndexTag), "include"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			out, stderr, code := run(t, "storage", "import", "--root", root, "--foreign", tc.policy, "--foreign-allow", allowLoopback, tc.src, "mirror/servercore:ltsc")
			if code != 0 {
				t.Fatalf("import: exit %d: %s", code, stderr)
			}
			if !strings.HasSuffix(strings.TrimSpace(out), "mirror/servercore:ltsc@"+e.Index.String()) {
				t.Errorf("import printed %q", out)
			}
			foreignHeld := e.Foreign[0].Hex
			_, err := os.Stat(filepath.Join(root, "docker/registry/v2/blobs/sha256", foreignHeld[:2], foreignHeld, "data"))
			if (err == nil) != (tc.policy == "include") {
				t.Errorf("foreign blob in the root: %v, policy %s", err == nil, tc.policy)
			}
			if out, _, code := run(t, "storage", "fsck", "--root", root); code != 0 || !strings.Contains(out, ": ok: 7") && !strings.Contains(out, ": ok: 11") {
				t.Errorf("fsck of the import: exit %d, %s", code, out)
			}
			host := referenceRegistry(t, root)
			pullAndVerify(t, host+"/mirror/servercore:ltsc", e.Index)
			host, _ = ferryServer(t, root)
			pullAndVerify(t, host+"/mirror/servercore:ltsc", e.Index)
		})
	}
}

func TestStorageFsckReferenceRegistryRoot(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	root := filepath.Join(t.TempDir(), "root")
	host := referenceRegistry(t, root)
	if _, stderr, code := run(t, "copy", e.Reg.Ref(fixture.Repo, fixture.IndexTag), host+"/mirror/servercore:ltsc"); code != 0 {
		t.Fatalf("push into the reference registry: exit %d: %s", code, stderr)
	}
	out, stderr, code := run(t, "storage", "fsck", "--root", root)
	if code != 0 || !strings.Contains(out, ": ok:") {
		t.Fatalf("fsck of the reference registry's root: exit %d\n%s%s", code, out, stderr)
	}
	// Break it: truncate a layer's data, delete a config's layer link.
	data := filepath.Join(root, filepath.FromSlash(regroot.DataDir))
	blob := e.Blobs[0].Hex
	if err := os.Truncate(filepath.Join(data, "blobs", "sha256", blob[:2], blob, "data"), 3); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join("repositories", "mirror", "servercore", "_layers", "sha256", e.Configs[1].Hex, "link")
	if err := os.Remove(filepath.Join(data, link)); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = run(t, "storage", "fsck", "--root", root)
	if code != 1 {
		t.Fatalf("fsck of a broken root: exit %d, want 1\n%s%s", code, out, stderr)
	}
	if !strings.Contains(out, e.Blobs[0].String()) || !strings.Contains(out, filepath.ToSlash(link)) || !strings.Contains(stderr, "2 problems") {
		t.Errorf("fsck did not name both problems:\n%s%s", out, stderr)
	}
}

func TestStorageGC(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	root := filepath.Join(t.TempDir(), "root")
	for _, im := range [][2]string{{fixture.IndexTag, "mirror/servercore:ltsc"}, {fixture.SingleTag, "single:ltsc2019"}} {
		if _, stderr, code := run(t, "storage", "import", "--root", root, e.Reg.Ref(fixture.Repo, im[0]), im[1]); code != 0 {
			t.Fatalf("import %s: exit %d: %s", im[1], code, stderr)
		}
	}
	host, stop := ferryServer(t, root, server.WithDelete(true))
	// Under a running server, gc and import refuse.
	_, stderr, code := run(t, "storage", "gc", "--root", root)
	if code != 1 || !strings.Contains(stderr, "ferry serve") || !strings.Contains(stderr, root) {
		t.Errorf("gc under a server: exit %d: %s", code, stderr)
	}
	_, stderr, code = run(t, "storage", "import", "--root", root, e.Reg.Ref(fixture.Repo, fixture.SingleTag), "other:x")
	if code != 1 || !strings.Contains(stderr, "ferry serve") {
		t.Errorf("import under a server: exit %d: %s", code, stderr)
	}
	if _, stderr, code := run(t, "delete", host+"/mirror/servercore:ltsc"); code != 0 {
		t.Fatalf("delete: exit %d: %s", code, stderr)
	}
	stop()

	before := blobCount(t, root)
	out, stderr, code := run(t, "storage", "gc", "--root", root, "--dry-run", "--delete-untagged")
	if code != 0 {
		t.Fatalf("gc --dry-run: exit %d: %s", code, stderr)
	}
	// The index and the second platform's manifest, config and layer are
	// orphaned; the first platform's are still tagged in single.
	for _, d := range []v1.Hash{e.Index, e.Manifests[1], e.Configs[1], e.Blobs[1]} {
		if !hasLine(out, "would remove blob", d.String()) {
			t.Errorf("dry run does not list %s:\n%s", d, out)
		}
	}
	for _, d := range []v1.Hash{e.Manifests[0], e.Configs[0], e.Blobs[0]} {
		if hasLine(out, "would remove blob", d.String()) {
			t.Errorf("dry run lists %s, still in use:\n%s", d, out)
		}
	}
	if !strings.Contains(out, "would remove 4 blobs") || !strings.Contains(out, "nothing removed") {
		t.Errorf("dry-run summary:\n%s", out)
	}
	if n := blobCount(t, root); n != before {
		t.Fatalf("dry run removed %d blobs", before-n)
	}
	out, stderr, code = run(t, "storage", "gc", "--root", root, "--delete-untagged")
	if code != 0 || !strings.Contains(out, "removed 4 blobs") || strings.Contains(out, "would") {
		t.Fatalf("gc: exit %d: %s%s", code, out, stderr)
	}
	if n := blobCount(t, root); n != before-4 {
		t.Errorf("%d blobs after gc, want %d", n, before-4)
	}
	if out, _, code := run(t, "storage", "fsck", "--root", root); code != 0 {
		t.Errorf("fsck after gc: exit %d\n%s", code, out)
	}
	host, _ = ferryServer(t, root)
	dir := t.TempDir()
	if _, stderr, code := run(t, "copy", "--foreign-allow", allowLoopback, host+"/single:ltsc2019", "oci:"+dir+":x"); code != 0 {
		t.Fatalf("pull the remaining image: exit %d: %s", code, stderr)
	}
	if out, _, _ := run(t, "digest", "oci:"+dir+":x"); strings.TrimSpace(out) != e.SingleID.String() {
		t.Errorf("remaining image digest %q, want %s", out, e.SingleID)
	}
}

// TestStorageGCKeepsReferrers pushes an image, its signature (an
// untagged OCI manifest whose subject is the image) and an unrelated
// untagged image through ferry serve: gc --delete-untagged keeps the
// signature and what it references, and removes the unrelated image.
func TestStorageGCKeepsReferrers(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	host, stop := ferryServer(t, root)
	oci := func(seed int64) v1.Image {
		t.Helper()
		img, err := random.Image(64+seed, 1)
		if err != nil {
			t.Fatal(err)
		}
		return mutate.MediaType(img, types.OCIManifestSchema1)
	}
	push := func(img v1.Image, ref string) v1.Hash {
		t.Helper()
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if ref == "" {
			ref = host + "/app@" + d.String()
		}
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(r, img); err != nil {
			t.Fatalf("push %s: %v", ref, err)
		}
		return d
	}
	img := oci(1)
	push(img, host+"/app:v1")
	subject, err := partial.Descriptor(img)
	if err != nil {
		t.Fatal(err)
	}
	sig, ok := mutate.Subject(mutate.ConfigMediaType(oci(2), "application/vnd.example.signature.v1+json"), *subject).(v1.Image)
	if !ok {
		t.Fatal("mutate.Subject of an image is not an image")
	}
	sigDigest := push(sig, "")
	orphanDigest := push(oci(3), "")
	stop()

	layers := func(img v1.Image) []v1.Hash {
		t.Helper()
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		ds := []v1.Hash{m.Config.Digest}
		for _, l := range m.Layers {
			ds = append(ds, l.Digest)
		}
		return ds
	}
	for _, dry := range []bool{true, false} {
		args := []string{"storage", "gc", "--root", root, "--delete-untagged", "--json"}
		if dry {
			args = append(args, "--dry-run")
		}
		out, stderr, code := run(t, args...)
		if code != 0 {
			t.Fatalf("gc (dry run %v): exit %d: %s", dry, code, stderr)
		}
		var rep regroot.GCReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("gc --json: %v\n%s", err, out)
		}
		removed := map[string]bool{}
		for _, b := range rep.Blobs {
			removed[b.Digest] = true
		}
		if !removed[orphanDigest.String()] || len(rep.Blobs) != 3 {
			t.Errorf("gc (dry run %v) removes %+v, want the unrelated image's manifest, config and layer", dry, rep.Blobs)
		}
		for _, d := range append([]v1.Hash{sigDigest}, layers(sig)...) {
			if removed[d.String()] {
				t.Errorf("gc (dry run %v) removes %s of the signature", dry, d)
			}
		}
	}
	if out, _, code := run(t, "storage", "fsck", "--root", root); code != 0 {
		t.Errorf("fsck after gc: exit %d\n%s", code, out)
	}
	host, _ = ferryServer(t, root)
	for _, d := range []v1.Hash{sigDigest, orphanDigest} {
		r, err := name.ParseReference(host + "/app@" + d.String())
		if err != nil {
			t.Fatal(err)
		}
		_, err = remote.Head(r)
		if kept := err == nil; kept != (d == sigDigest) {
			t.Errorf("after gc, manifest %s: %v", d, err)
		}
	}
}

// hasLine reports whether a line of out starts with prefix and holds s.
func hasLine(out, prefix, s string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) && strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// blobCount counts the blobs in root (those fsck hashes).
func blobCount(t *testing.T, root string) int {
	t.Helper()
	rep, err := regroot.Fsck(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	return rep.Blobs
}

func TestStorageServeHoldsRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	cmd := NewRootCmd(&out, &errb)
	cmd.SetArgs([]string{"serve", "--addr", "127.0.0.1:0", "--root", root})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	for i := 0; i < 200 && out.String() == ""; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if out.String() == "" {
		cancel()
		t.Fatalf("serve did not start: %s", errb.String())
	}
	_, stderr, code := run(t, "storage", "gc", "--root", root)
	if code != 1 || !strings.Contains(stderr, "ferry serve (pid ") || !strings.Contains(stderr, "holds this storage root") {
		t.Errorf("gc under ferry serve: exit %d: %s", code, stderr)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Once the server stops, the root is free (and, never written to,
	// still no registry root).
	if out, stderr, code := run(t, "storage", "gc", "--root", root); code != 1 || !strings.Contains(stderr, "not a registry storage root") {
		t.Errorf("gc after serve stopped: exit %d: %s%s", code, out, stderr)
	}
}

func TestStorageBadInput(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	notRoot := t.TempDir()
	if err := os.WriteFile(filepath.Join(notRoot, "file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	layout := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		say  string
	}{
		{[]string{"storage", "fsck", "--root", missing}, 1, "no such file"},
		{[]string{"storage", "fsck", "--root", notRoot}, 1, "not a registry storage root"},
		{[]string{"storage", "gc", "--root", missing}, 1, "no such file"},
		{[]string{"storage", "gc", "--root", notRoot}, 1, "not a registry storage root"},
		{[]string{"storage", "gc"}, 2, "--root ROOT is required"},
		{[]string{"storage", "import", "--root", notRoot, "oci:" + layout, "app:v1"}, 1, "not a registry storage root"},
		{[]string{"storage", "import", "--root", missing, "oci:" + layout, "Bad/Name:v1"}, 2, "invalid repository name"},
		{[]string{"storage", "import", "--root", missing, "oci:" + layout, "app:bad tag"}, 2, "invalid repository name"},
		{[]string{"storage", "import", "--root", missing, "oci:" + layout, "localhost:5000/app:v1"}, 2, "without a registry host"},
		{[]string{"storage", "import", "--root", missing, "oci:" + layout}, 2, "accepts 2 arg"},
		{[]string{"storage", "import", "--root", missing, "--foreign", "drop", "oci:" + layout, "app"}, 2, "drop"},
	} {
		_, stderr, code := run(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.say) {
			t.Errorf("%v: exit %d, want %d saying %q: %s", tc.args, code, tc.code, tc.say, stderr)
		}
	}
	// A refused name leaves no root behind.
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("a failed import created %s", missing)
	}
}
