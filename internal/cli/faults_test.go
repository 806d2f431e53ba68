package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/internal/testkit/faults"
	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

// The fault-injection suite: a faults.Proxy between ferry and a real
// registry (or the foreign URL server) breaks requests in the ways real
// transfers meet, and every command must either succeed with every blob
// verified, or exit 1 with a message naming what failed and leave nothing
// half-written. A rerun without the fault transfers only what is missing.

// stall is the --stall-timeout the suite runs with, so that a stalled
// connection costs little time.
const stall = "500ms"

// faultImage is a small Windows image (one foreign base layer, two
// ordinary layers of 8 KiB) in a registry, and the descriptors of its
// blobs.
type faultImage struct {
	reg     *fixture.Registry
	urls    *fixture.URLServer
	digest  v1.Hash
	hosted  []v1.Descriptor // config and ordinary layers: in the registry
	foreign []v1.Descriptor // the foreign layer: at the URL server
}

// newFaultImage pushes the image as win/app:v1.
func newFaultImage(t *testing.T) *faultImage {
	t.Helper()
	fi := &faultImage{reg: fixture.NewRegistry(t), urls: fixture.NewURLServer(t)}
	img := fi.urls.WindowsImage(t, fixture.ImageSpec{OSVersion: fixture.OSVersion1, ForeignLayers: 1, Layers: 2, LayerSize: 8 << 10, Seed: 11})
	fi.digest = fi.reg.Push(t, "win/app", "v1", img)
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	fi.hosted = append(fi.hosted, m.Config)
	fl, ol := fixture.Layers(t, img)
	fi.hosted = append(fi.hosted, ol...)
	fi.foreign = fl
	return fi
}

// last is the image's last layer, the one the faults aim at.
func (fi *faultImage) last() v1.Descriptor { return fi.hosted[len(fi.hosted)-1] }

// ferryJSON runs ferry with --json and the suite's stall timeout and
// returns the Bytes the summary reports (-1 when the command failed).
func ferryJSON(t *testing.T, args ...string) (int64, string, int) {
	t.Helper()
	return ferryJSONStall(t, stall, args...)
}

// ferryJSONStall is ferryJSON with another stall timeout. Reruns, which
// run without a fault, use a long one: on a loaded machine a healthy
// request can pause past 500ms, and its retry would move its bytes twice.
func ferryJSONStall(t *testing.T, stallTimeout string, args ...string) (int64, string, int) {
	t.Helper()
	out, stderr, code := run(t, append([]string{"--stall-timeout", stallTimeout, "--retry-delay", "10ms"}, args...)...)
	if code != 0 {
		return -1, stderr, code
	}
	var res struct{ Bytes int64 }
	// bundle push prints a list of results; copy, pull and push one.
	var list []struct{ Bytes int64 }
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("stdout is not a JSON summary: %v: %q", err, out)
		}
		for _, r := range list {
			res.Bytes += r.Bytes
		}
	}
	return res.Bytes, stderr, code
}

// sum adds up the sizes of descs.
func sum(descs []v1.Descriptor) int64 {
	var n int64
	for _, d := range descs {
		n += d.Size
	}
	return n
}

// destination is where a faulted command writes: how to name it, what
// it holds, and whether anything of a failed write is visible.
type destination struct {
	// args returns the command for source src ("HOST/win/app:v1").
	args func(src string) []string
	// has reports whether the destination holds the blob.
	has func(t *testing.T, d v1.Descriptor) bool
	// clean fails the test if a failed write left a tag, an index.json
	// entry, a file under its final name or a temporary file.
	clean func(t *testing.T)
	// verify is the location `ferry verify --deep` checks after success.
	verify string
	// includesForeign says whether the foreign layer is copied.
	includesForeign bool
}

func registryDest(t *testing.T) destination {
	dst := fixture.NewRegistry(t)
	return destination{
		args: func(src string) []string { return []string{"copy", "--json", src, dst.Ref("mirror/app", "v1")} },
		has:  func(t *testing.T, d v1.Descriptor) bool { return dst.HasBlob(t, "mirror/app", d.Digest) },
		clean: func(t *testing.T) {
			if dst.TagExists(t, "mirror/app", "v1") {
				t.Error("a failed copy left the tag")
			}
		},
		verify: dst.Ref("mirror/app", "v1"),
	}
}

func layoutDest(t *testing.T) destination {
	dir := filepath.Join(t.TempDir(), "layout")
	return destination{
		args: func(src string) []string {
			return []string{"pull", "--json", "--format", "oci", "--foreign-allow", allowLoopback, src, dir}
		},
		has: func(t *testing.T, d v1.Descriptor) bool {
			_, err := os.Stat(filepath.Join(dir, "blobs", d.Digest.Algorithm, d.Digest.Hex))
			return err == nil
		},
		clean: func(t *testing.T) {
			if b, err := os.ReadFile(filepath.Join(dir, "index.json")); err == nil && bytes.Contains(b, []byte(`"v1"`)) {
				t.Errorf("a failed pull left an index.json entry: %s", b)
			}
			noTemp(t, dir)
		},
		verify:          "oci:" + dir + ":v1",
		includesForeign: true,
	}
}

func archiveDest(t *testing.T) destination {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.tar")
	return destination{
		args: func(src string) []string {
			return []string{"pull", "--json", "--foreign-allow", allowLoopback, src, p}
		},
		has: func(t *testing.T, d v1.Descriptor) bool { return false }, // all or nothing
		clean: func(t *testing.T) {
			if _, err := os.Stat(p); err == nil {
				t.Error("a failed pull left the archive under its final name")
			}
			noTemp(t, dir)
		},
		verify:          "docker-archive:" + p,
		includesForeign: true,
	}
}

// destinations are the kinds of destination each source fault is tried
// against.
var destinations = []struct {
	name string
	make func(t *testing.T) destination
}{
	{"registry", registryDest},
	{"layout", layoutDest},
	{"docker-archive", archiveDest},
}

// noTemp fails the test if any file under dir has a temporary name.
func noTemp(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

// faultRun is one command under one fault, then, if it failed, its rerun
// without the fault.
type faultRun struct {
	proxy *faults.Proxy
	fault faults.Fault
	ok    bool     // the command must succeed despite the fault
	msg   []string // else its message must contain these
	args  []string
	dst   destination
	// all are the blobs the command writes; proxied are those whose bytes
	// pass the proxy, as requests with method and a path containing path.
	all, proxied []v1.Descriptor
	method, path string
}

// check runs the command under the fault and asserts the outcome: success
// and a destination that verifies, or exit 1 with the message, nothing
// half-written, and a rerun that transfers exactly the blobs the
// destination lacks.
func (r faultRun) check(t *testing.T) {
	t.Helper()
	r.proxy.Add(r.fault)
	_, stderr, code := ferryJSON(t, r.args...)
	if r.ok {
		if code != 0 {
			t.Fatalf("exit %d under the fault: %s", code, stderr)
		}
		verifyDeep(t, r.dst.verify)
		return
	}
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, stderr)
	}
	for _, want := range r.msg {
		if !strings.Contains(stderr, want) {
			t.Errorf("message lacks %q: %s", want, stderr)
		}
	}
	r.dst.clean(t)
	// A registry may still be committing an upload the failed command
	// abandoned after its last byte: wait until what it holds is stable.
	missing := r.missing(t)
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		again := r.missing(t)
		if len(again) == len(missing) {
			break
		}
		missing = again
	}
	var missingProxied []v1.Descriptor
	for _, d := range missing {
		if slicesContain(r.proxied, d) {
			missingProxied = append(missingProxied, d)
		}
	}
	r.proxy.Clear()
	n, stderr, code := ferryJSONStall(t, "60s", r.args...)
	if code != 0 {
		t.Fatalf("rerun: exit %d: %s", code, stderr)
	}
	if n != sum(missing) {
		t.Errorf("rerun copied %d bytes, want %d (the %d blobs missing)", n, sum(missing), len(missing))
	}
	// The proxy's count may exceed what is missing only by whole missing
	// blobs sent again: on a loaded machine a healthy transfer can be
	// retried. A blob the destination already held must never pass.
	if got := r.proxy.Bytes(r.method, r.path); !repeatsOf(got-sum(missingProxied), missingProxied) {
		t.Errorf("rerun moved %d bytes through the proxy, want %d: %v", got, sum(missingProxied), r.proxy.Dump())
	} else if got != sum(missingProxied) {
		t.Logf("rerun retried: %d bytes through the proxy for %d missing (%v)", got, sum(missingProxied), r.proxy.Dump())
	}
	verifyDeep(t, r.dst.verify)
}

// repeatsOf reports whether extra is 0 or a sum of the sizes of blobs,
// each counted any number of times.
func repeatsOf(extra int64, blobs []v1.Descriptor) bool {
	if extra < 0 || extra > 1<<24 {
		return false
	}
	can := make([]bool, extra+1)
	can[0] = true
	for n := int64(1); n <= extra; n++ {
		for _, d := range blobs {
			if d.Size > 0 && d.Size <= n && can[n-d.Size] {
				can[n] = true
				break
			}
		}
	}
	return can[extra]
}

// missing returns the blobs the destination lacks.
func (r faultRun) missing(t *testing.T) []v1.Descriptor {
	var out []v1.Descriptor
	for _, d := range r.all {
		if !r.dst.has(t, d) {
			out = append(out, d)
		}
	}
	return out
}

// faultCase is one row of a fault table.
type faultCase struct {
	name  string
	fault faults.Fault
	ok    bool
	msg   []string
}

// at returns the fault aimed at path.
func at(path string, f faults.Fault) faults.Fault { f.Path = path; return f }

func rewriteFn(fn func([]byte) []byte) faults.Fault {
	return faults.Fault{Kind: faults.Rewrite, Times: -1, Fn: fn}
}

// TestFaultSourceRegistry puts the proxy between ferry and the source
// registry, for copy to a registry, pull to a layout and pull to a
// docker-archive.
func TestFaultSourceRegistry(t *testing.T) {
	t.Parallel()
	cases := func(fi *faultImage) []faultCase {
		layer := "/blobs/" + fi.last().Digest.String()
		l := fi.last().Digest.String()
		return []faultCase{
			{"503 once", at(layer, faults.Fault{Kind: faults.Status, Status: 503}), true, nil},
			{"429 with Retry-After on the manifest", at("/manifests/", faults.Fault{Kind: faults.Status, Status: 429, RetryAfter: "1"}), true, nil},
			{"connection dropped once", at(layer, faults.Fault{Kind: faults.Drop, After: 1000}), true, nil},
			{"stalled once", at(layer, faults.Fault{Kind: faults.Stall, After: 1000}), true, nil},
			{"500 always", at(layer, faults.Fault{Kind: faults.Status, Status: 500, Times: -1}), false, []string{l, "500"}},
			{"502 on manifests always", at("/manifests/", faults.Fault{Kind: faults.Status, Status: 502, Times: -1}), false, []string{"502"}},
			{"connection dropped always", at(layer, faults.Fault{Kind: faults.Drop, After: 1000, Times: -1}), false, []string{l, "EOF"}},
			{"stalled always", at(layer, faults.Fault{Kind: faults.Stall, After: 1000, Times: -1}), false, []string{l, "stalled"}},
			{"truncated body", at(layer, faults.Fault{Kind: faults.Truncate, After: 1000, Times: -1}), false, []string{l, "size mismatch"}},
			{"Content-Length too large", at(layer, faults.Fault{Kind: faults.WrongLength, Extra: 100, Times: -1}), false, []string{l, "EOF"}},
			{"manifest bytes do not match the digest", at("/manifests/sha256:", rewriteFn(func(b []byte) []byte { return append(b, ' ') })),
				false, []string{fi.digest.String(), "digest mismatch"}},
		}
	}
	for i := range cases(&faultImage{hosted: []v1.Descriptor{{}}}) {
		for _, d := range destinations {
			name := cases(&faultImage{hosted: []v1.Descriptor{{}}})[i].name
			t.Run(name+"/"+d.name, func(t *testing.T) {
				t.Parallel()
				fi := newFaultImage(t)
				c := cases(fi)[i]
				dst := d.make(t)
				p := faults.New(t, fi.reg.URL)
				all := fi.hosted
				if dst.includesForeign {
					all = append(append([]v1.Descriptor(nil), fi.hosted...), fi.foreign...)
				}
				faultRun{proxy: p, fault: c.fault, ok: c.ok, msg: c.msg, args: dst.args(p.Host + "/win/app:v1"), dst: dst,
					all: all, proxied: fi.hosted, method: "GET", path: "/blobs/"}.check(t)
			})
		}
	}
}

// TestFaultDestinationRegistry puts the proxy between ferry and the
// destination registry, for push from a layout and bundle push.
func TestFaultDestinationRegistry(t *testing.T) {
	t.Parallel()
	cases := func(fi *faultImage) []faultCase {
		hex := fi.last().Digest.Hex // in the query of the upload that completes the last layer
		l := fi.last().Digest.String()
		return []faultCase{
			{"503 once on starting an upload", at("/blobs/uploads/", faults.Fault{Kind: faults.Status, Method: "POST", Status: 503}), true, nil},
			{"429 with Retry-After on the manifest", at("/manifests/", faults.Fault{Kind: faults.Status, Method: "PUT", Status: 429, RetryAfter: "1"}), true, nil},
			{"upload dropped once", at(hex, faults.Fault{Kind: faults.Drop, Method: "PUT", After: 1000}), true, nil},
			{"upload stalled once", at(hex, faults.Fault{Kind: faults.Stall, Method: "PUT", After: 1000}), true, nil},
			{"500 on the manifest always", at("/manifests/", faults.Fault{Kind: faults.Status, Method: "PUT", Status: 500, Times: -1}), false, []string{"500"}},
			{"upload dropped always", at(hex, faults.Fault{Kind: faults.Drop, Method: "PUT", After: 1000, Times: -1}), false, []string{l}},
			{"upload stalled always", at(hex, faults.Fault{Kind: faults.Stall, Method: "PUT", After: 1000, Times: -1}), false, []string{l, "stalled"}},
			{"503 on blob checks always", at("/blobs/sha256:", faults.Fault{Kind: faults.Status, Method: "HEAD", Status: 503, Times: -1}), false, []string{"503"}},
		}
	}
	type command struct {
		name string
		// args returns the command pushing fi to the registry at host,
		// and the repository it lands in.
		args func(t *testing.T, fi *faultImage, host string) ([]string, string)
	}
	commands := []command{
		{"push", func(t *testing.T, fi *faultImage, host string) ([]string, string) {
			dir := filepath.Join(t.TempDir(), "layout")
			if _, stderr, code := run(t, "pull", "--format", "oci", "--foreign-allow", allowLoopback, fi.reg.Ref("win/app", "v1"), dir); code != 0 {
				t.Fatalf("pull: exit %d: %s", code, stderr)
			}
			return []string{"push", "--json", dir, host + "/mirror/app:v1"}, "mirror/app"
		}},
		{"bundle push", func(t *testing.T, fi *faultImage, host string) ([]string, string) {
			file := filepath.Join(t.TempDir(), "bundle.tar")
			if _, stderr, code := run(t, "bundle", "create", "--foreign-allow", allowLoopback, "-o", file, fi.reg.Ref("win/app", "v1")); code != 0 {
				t.Fatalf("bundle create: exit %d: %s", code, stderr)
			}
			return []string{"bundle", "push", "--json", file, host + "/mirror"}, "mirror/win/app"
		}},
	}
	zero := &faultImage{hosted: []v1.Descriptor{{}}}
	for i := range cases(zero) {
		for _, cmd := range commands {
			t.Run(cases(zero)[i].name+"/"+cmd.name, func(t *testing.T) {
				t.Parallel()
				fi := newFaultImage(t)
				c := cases(fi)[i]
				reg := fixture.NewRegistry(t)
				p := faults.New(t, reg.URL)
				args, repo := cmd.args(t, fi, p.Host)
				dst := destination{
					has: func(t *testing.T, d v1.Descriptor) bool { return reg.HasBlob(t, repo, d.Digest) },
					clean: func(t *testing.T) {
						if reg.TagExists(t, repo, "v1") {
							t.Error("a failed push left the tag")
						}
					},
					verify: reg.Ref(repo, "v1"),
				}
				faultRun{proxy: p, fault: c.fault, ok: c.ok, msg: c.msg, args: args, dst: dst,
					all: fi.hosted, proxied: fi.hosted, method: "PUT", path: "/blobs/uploads/"}.check(t)
			})
		}
	}
}

// TestFaultForeignURLs puts the proxy between ferry and the foreign URL
// server (fwlink redirects and the CDN behind them), for copy to a
// registry with --foreign include and pull to a layout.
func TestFaultForeignURLs(t *testing.T) {
	t.Parallel()
	flip := func(b []byte) []byte { b[len(b)/2] ^= 0xff; return b }
	cases := func(fi *faultImage) []faultCase {
		f := fi.foreign[0].Digest.String()
		return []faultCase{
			{"503 once", at("/cdn/", faults.Fault{Kind: faults.Status, Status: 503}), true, nil},
			{"429 with Retry-After on the redirect", at("/fwlink", faults.Fault{Kind: faults.Status, Status: 429, RetryAfter: "1"}), true, nil},
			{"connection dropped once", at("/cdn/", faults.Fault{Kind: faults.Drop, After: 1000}), true, nil},
			{"stalled once", at("/cdn/", faults.Fault{Kind: faults.Stall, After: 1000}), true, nil},
			{"500 always", at("/cdn/", faults.Fault{Kind: faults.Status, Status: 500, Times: -1}), false, []string{f, "500"}},
			{"truncated body", at("/cdn/", faults.Fault{Kind: faults.Truncate, After: 1000, Times: -1}), false, []string{f, "size mismatch"}},
			{"Content-Length too large", at("/cdn/", faults.Fault{Kind: faults.WrongLength, Extra: 100, Times: -1}), false, []string{f}},
			{"corrupt bytes", at("/cdn/", rewriteFn(flip)), false, []string{f, "digest mismatch"}},
			{"redirect loop", at("/fwlink", faults.Fault{Kind: faults.Redirect, Times: -1}), false, []string{f, "redirect", "at most 10"}},
		}
	}
	zero := &faultImage{hosted: []v1.Descriptor{{}}, foreign: []v1.Descriptor{{}}}
	for i := range cases(zero) {
		for _, d := range destinations[:2] {
			t.Run(cases(zero)[i].name+"/"+d.name, func(t *testing.T) {
				t.Parallel()
				fi := newFaultImage(t)
				c := cases(fi)[i]
				p := faults.New(t, fi.urls.URL)
				// The same image, its foreign urls pointing at the proxy.
				if _, stderr, code := run(t, "copy", "--foreign-rewrite-urls", fi.urls.URL+"/="+p.URL+"/", fi.reg.Ref("win/app", "v1"), fi.reg.Ref("win/proxied", "v1")); code != 0 {
					t.Fatalf("staging: exit %d: %s", code, stderr)
				}
				dst := d.make(t)
				args := dst.args(fi.reg.Ref("win/proxied", "v1"))
				if !dst.includesForeign {
					args = append([]string{args[0], "--foreign", "include", "--foreign-allow", allowLoopback}, args[1:]...)
				}
				all := append(append([]v1.Descriptor(nil), fi.hosted...), fi.foreign...)
				faultRun{proxy: p, fault: c.fault, ok: c.ok, msg: c.msg, args: args, dst: dst,
					all: all, proxied: fi.foreign, method: "GET", path: "/cdn/"}.check(t)
			})
		}
	}
}

func slicesContain(list []v1.Descriptor, d v1.Descriptor) bool {
	for _, e := range list {
		if e.Digest == d.Digest {
			return true
		}
	}
	return false
}

// verifyDeep fails the test unless `ferry verify --deep` passes on loc.
func verifyDeep(t *testing.T, loc string) {
	t.Helper()
	if out, stderr, code := run(t, "verify", "--deep", "--foreign-allow", allowLoopback, loc); code != 0 {
		t.Errorf("verify --deep %s: exit %d: %s%s", loc, code, out, stderr)
	}
}
