package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

// TestPullPushFormats checks pull's choice of format from PATH, and that
// push reads each back (format sniffed) with the digest it had.
func TestPullPushFormats(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	dir := t.TempDir()
	dst := fixture.NewRegistry(t)
	for _, c := range []struct {
		name, ref, path string
		has, hasNot     string // a file the result must (not) contain
		want            string
		extra           []string
	}{
		{"image to .tar is a docker-archive", fixture.SingleTag, "single.tar", "manifest.json", "", e.SingleID.String(), nil},
		{"index to .tar is an oci-archive", fixture.IndexTag, "index.tar", "index.json", "manifest.json", e.Index.String(), nil},
		{"one platform to .tar is a docker-archive", fixture.IndexTag, "one.tar", "manifest.json", "", e.Manifests[1].String(), []string{"--platform", "ltsc2022"}},
		{"a directory is a layout", fixture.IndexTag, "layout", "", "", e.Index.String(), nil},
		// One --platform that selects both entries, and ALL, keep the index.
		{"a platform matching two entries to .tar is an oci-archive", fixture.IndexTag, "both.tar", "index.json", "manifest.json", e.Index.String(), []string{"--platform", "windows/amd64"}},
		{"ALL to .tar is an oci-archive", fixture.IndexTag, "all.tar", "index.json", "manifest.json", e.Index.String(), []string{"--platform", "ALL"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.path)
			args := append([]string{"pull", "--foreign-allow", allowLoopback}, c.extra...)
			out, stderr, code := run(t, append(args, e.Reg.Ref(fixture.Repo, c.ref), p)...)
			if code != 0 {
				t.Fatalf("pull: exit %d: %s", code, stderr)
			}
			if !strings.Contains(out, "@"+c.want) {
				t.Errorf("pull printed %q, want the digest %s", out, c.want)
			}
			if c.path == "layout" {
				if _, err := os.Stat(filepath.Join(p, "index.json")); err != nil {
					t.Fatalf("no layout: %v", err)
				}
			} else {
				files := tarFiles(t, p)
				if _, ok := files[c.has]; !ok {
					t.Errorf("%s lacks %s", c.path, c.has)
				}
				if _, ok := files[c.hasNot]; ok && c.hasNot != "" {
					t.Errorf("%s has %s", c.path, c.hasNot)
				}
			}
			repo := strings.TrimSuffix(c.path, ".tar")
			if _, stderr, code := run(t, "push", "--foreign", "include", p, dst.Ref(repo, "v1")); code != 0 {
				t.Fatalf("push: exit %d: %s", code, stderr)
			}
			if _, _, d := dst.Manifest(t, repo, "v1"); d.String() != c.want {
				t.Errorf("pushed %s, want %s", d, c.want)
			}
		})
	}
	if _, _, code := run(t, "pull", "--format", "zip", e.Reg.Ref(fixture.Repo, fixture.SingleTag), filepath.Join(dir, "x")); code != 2 {
		t.Errorf("bad --format: exit %d, want 2", code)
	}
	if _, stderr, code := run(t, "push", filepath.Join(dir, "missing.tar"), dst.Ref("x", "1")); code != 1 || !strings.Contains(stderr, "missing.tar") {
		t.Errorf("missing file: exit %d: %s", code, stderr)
	}
}

// TestBundle writes three images (one a two-platform index) into a bundle,
// lists it, and pushes it into empty registries under a prefix with keep
// and include: every image present with its source digest.
func TestBundle(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	nano := e.URLs.WindowsImage(t, fixture.ImageSpec{OSVersion: fixture.OSVersion2, ForeignLayers: 1, Layers: 1, Seed: 7, OCI: true})
	nanoID := e.Reg.Push(t, "windows/nanoserver", "ltsc2022", nano)
	file := filepath.Join(t.TempDir(), "windows.tar")
	refs := []string{e.Reg.Ref(fixture.Repo, fixture.SingleTag), e.Reg.Ref(fixture.Repo, fixture.IndexTag), e.Reg.Ref("windows/nanoserver", "ltsc2022")}
	want := map[string]string{
		"windows/servercore:" + fixture.SingleTag: e.SingleID.String(),
		"windows/servercore:" + fixture.IndexTag:  e.Index.String(),
		"windows/nanoserver:ltsc2022":             nanoID.String(),
	}
	if _, stderr, code := run(t, append([]string{"bundle", "create", "--foreign-allow", allowLoopback, "-o", file}, refs...)...); code != 0 {
		t.Fatalf("bundle create: exit %d: %s", code, stderr)
	}
	fetched := e.URLs.Requests("/fwlink")
	out, stderr, code := run(t, "bundle", "list", "--json", file)
	if code != 0 {
		t.Fatalf("bundle list: exit %d: %s", code, stderr)
	}
	var listed []struct {
		Reference  string
		Descriptor struct{ Digest string }
	}
	if err := json.Unmarshal([]byte(out), &listed); err != nil || len(listed) != 3 {
		t.Fatalf("bundle list: %q: %v", out, err)
	}
	for _, l := range listed {
		if w := want[strings.TrimPrefix(l.Reference, e.Reg.Host+"/")]; w != l.Descriptor.Digest {
			t.Errorf("listed %s %s, want %s", l.Reference, l.Descriptor.Digest, w)
		}
	}
	for _, policy := range []string{"keep", "include"} {
		t.Run(policy, func(t *testing.T) {
			dst := fixture.NewRegistry(t)
			out, stderr, code := run(t, "bundle", "push", "--foreign", policy, file, dst.Host+"/mirror")
			if code != 0 {
				t.Fatalf("bundle push: exit %d: %s", code, stderr)
			}
			if n := strings.Count(out, "\n"); n != 3 {
				t.Errorf("bundle push printed %d lines: %q", n, out)
			}
			for ref, d := range want {
				repo, tag, _ := strings.Cut(ref, ":")
				if _, _, got := dst.Manifest(t, "mirror/"+repo, tag); got.String() != d {
					t.Errorf("%s: %s, want %s", ref, got, d)
				}
			}
			for _, b := range e.Foreign {
				if dst.HasBlob(t, "mirror/windows/servercore", b) != (policy == "include") {
					t.Errorf("foreign blob %s pushed=%v with %s", b, policy == "keep", policy)
				}
			}
			for _, b := range e.Blobs {
				if !dst.BlobDigestOK(t, "mirror/windows/servercore", b) {
					t.Errorf("blob %s missing", b)
				}
			}
		})
	}
	if e.URLs.Requests("/fwlink") != fetched {
		t.Errorf("bundle push went to the foreign urls: the bundle should carry the bytes")
	}
	if _, _, code := run(t, "bundle", "create", e.Reg.Ref(fixture.Repo, fixture.SingleTag)); code != 2 {
		t.Errorf("create without -o: exit %d, want 2", code)
	}
	if _, stderr, code := run(t, "bundle", "push", file, "not a registry"); code != 2 {
		t.Errorf("bad prefix: exit %d, want 2: %s", code, stderr)
	}
}

// TestPullResolvesOnce: pull looks at the source once to choose the format
// and then copies what it looked at, without a second request for the tag
// (which could also have moved in between).
func TestPullResolvesOnce(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	tag := "/manifests/" + fixture.SingleTag
	before := e.Reg.Count("HEAD", tag) + e.Reg.Count("GET", tag)
	out, stderr, code := run(t, "pull", "--foreign-allow", allowLoopback, e.Reg.Ref(fixture.Repo, fixture.SingleTag), filepath.Join(t.TempDir(), "one.tar"))
	if code != 0 {
		t.Fatalf("pull: exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "@"+e.SingleID.String()) {
		t.Errorf("pull printed %q, want the digest %s", out, e.SingleID)
	}
	if n := e.Reg.Count("HEAD", tag) + e.Reg.Count("GET", tag) - before; n != 1 {
		t.Errorf("%d requests for the tag, want 1", n)
	}
}

// TestPullFetchesIndexOnce: with --platform and no --format, pull reads
// the index to choose the format, and the copy takes that content instead
// of fetching it again.
func TestPullFetchesIndexOnce(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	idx := "/manifests/" + e.Index.String()
	before := e.Reg.Count("GET", idx)
	out, stderr, code := run(t, "pull", "--foreign-allow", allowLoopback, "--platform", "ltsc2022", e.Reg.Ref(fixture.Repo, fixture.IndexTag), filepath.Join(t.TempDir(), "one.tar"))
	if code != 0 {
		t.Fatalf("pull: exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "@"+e.Manifests[1].String()) {
		t.Errorf("pull printed %q, want the digest %s", out, e.Manifests[1])
	}
	if n := e.Reg.Count("GET", idx) - before; n != 1 {
		t.Errorf("%d GETs of the index, want 1", n)
	}
}
