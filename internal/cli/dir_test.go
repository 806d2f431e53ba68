package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/store/dirstore"
)

// needSkopeo returns skopeo's path or skips the test (always on Windows).
func needSkopeo(t *testing.T) string {
	t.Helper()
	skipOnWindows(t, "skopeo")
	p, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("skopeo not installed (.ci/run installs it)")
	}
	return p
}

// ferryOK runs ferry and fails the test unless it exits 0; it returns
// stdout with surrounding space trimmed.
func ferryOK(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, code := run(t, args...)
	if code != 0 {
		t.Fatalf("ferry %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	return strings.TrimSpace(out)
}

// TestDirFromSkopeo: skopeo copies an image, and an index with --all,
// from a registry into dir:; ferry reads both and pushes them with the
// same digests.
func TestDirFromSkopeo(t *testing.T) {
	skopeo := needSkopeo(t)
	reg := fixture.NewRegistry(t)
	urls := fixture.NewURLServer(t)
	a := urls.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.17763.1", Layers: 2, Seed: 11})
	b := urls.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.20348.1", Layers: 1, Seed: 12})
	imgID := reg.Push(t, "win/app", "v1", a)
	idxID, _ := reg.PushIndex(t, "win/app", "multi", a, b)
	tmp := t.TempDir()
	dst := fixture.NewRegistry(t)

	for _, tc := range []struct {
		tag  string
		id   string
		args []string
	}{
		{"v1", imgID.String(), nil},
		{"multi", idxID.String(), []string{"--all"}},
	} {
		dir := filepath.Join(tmp, tc.tag)
		args := append([]string{"copy", "--src-tls-verify=false", "--preserve-digests"}, tc.args...)
		runTool(t, skopeo, append(args, "docker://"+reg.Ref("win/app", tc.tag), "dir:"+dir)...)
		if got := ferryOK(t, "digest", "dir:"+dir); got != tc.id {
			t.Errorf("%s: ferry digest dir: = %s, want %s", tc.tag, got, tc.id)
		}
		ferryOK(t, "copy", "dir:"+dir, dst.Ref("from-skopeo", tc.tag))
		if _, _, d := dst.Manifest(t, "from-skopeo", tc.tag); d.String() != tc.id {
			t.Errorf("%s: pushed digest %s, want %s", tc.tag, d, tc.id)
		}
	}
}

// TestDirToSkopeo: ferry writes an OCI index, foreign layers kept, into
// dir: in skopeo's naming; skopeo copies it into an OCI layout with the
// same digest, which ferry reads back; ferry reads its own dir: too,
// fetching the absent foreign layers from their urls. (skopeo 1.9 will
// not write a Docker manifest list into oci: without converting it.)
func TestDirToSkopeo(t *testing.T) {
	skopeo := needSkopeo(t)
	reg := fixture.NewRegistry(t)
	urls := fixture.NewURLServer(t)
	var manifests, foreign, blobs []v1.Hash
	var imgs []v1.Image
	for i, osv := range []string{fixture.OSVersion1, fixture.OSVersion2} {
		img := urls.WindowsImage(t, fixture.ImageSpec{OSVersion: osv, ForeignLayers: 1, Layers: 1, Seed: int64(20 + i), OCI: true})
		imgs = append(imgs, img)
		manifests = append(manifests, digestOf(t, img))
		fl, ol := fixture.Layers(t, img)
		foreign = append(foreign, fl[0].Digest)
		blobs = append(blobs, ol[0].Digest, configOf(t, img))
	}
	id := pushPlainIndex(t, reg, "win/oci", "v1", imgs...)
	dir := filepath.Join(t.TempDir(), "img")
	ferryOK(t, "copy", "--foreign", "keep", reg.Ref("win/oci", "v1"), "dir:"+dir)

	v, err := os.ReadFile(filepath.Join(dir, "version"))
	if err != nil || string(v) != dirstore.Version {
		t.Errorf("version file %q, %v", v, err)
	}
	for _, m := range manifests {
		if _, err := os.Stat(filepath.Join(dir, m.Hex+".manifest.json")); err != nil {
			t.Errorf("instance manifest: %v", err)
		}
	}
	for _, f := range foreign {
		if _, err := os.Stat(filepath.Join(dir, f.Hex)); err == nil {
			t.Errorf("foreign blob %s written with keep", f)
		}
	}
	for _, h := range blobs {
		if _, err := os.Stat(filepath.Join(dir, h.Hex)); err != nil {
			t.Errorf("blob: %v", err)
		}
	}

	layout := filepath.Join(t.TempDir(), "oci")
	runTool(t, skopeo, "copy", "--all", "--preserve-digests", "dir:"+dir, "oci:"+layout+":v1")
	if got := ferryOK(t, "digest", "oci:"+layout+":v1"); got != id.String() {
		t.Errorf("skopeo's copy of ferry's dir: has digest %s, want %s", got, id)
	}

	dst := fixture.NewRegistry(t)
	ferryOK(t, "copy", "--foreign", "include", "--foreign-allow", allowLoopback, "dir:"+dir, dst.Ref("back", "v1"))
	if _, _, d := dst.Manifest(t, "back", "v1"); d != id {
		t.Errorf("digest %s, want %s", d, id)
	}
	for _, f := range foreign {
		if !dst.BlobDigestOK(t, "back", f) {
			t.Errorf("foreign blob %s not fetched from its url", f)
		}
	}
}

// pushPlainIndex pushes imgs and an OCI index of them without the
// artifactType fields ggcr adds to its entries, which skopeo 1.9 drops
// when it re-serializes an index (and so refuses --preserve-digests).
func pushPlainIndex(t *testing.T, reg *fixture.Registry, repo, tag string, imgs ...v1.Image) v1.Hash {
	t.Helper()
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	for _, img := range imgs {
		reg.Push(t, repo, digestOf(t, img).String(), img)
		raw, err := img.RawManifest()
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		idx.Manifests = append(idx.Manifests, v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: int64(len(raw)), Digest: digestOf(t, img), Platform: cf.Platform()})
	}
	raw, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, reg.URL+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader(raw))
	req.Header.Set("Content-Type", string(types.OCIImageIndex))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("push index: %v %v", resp, err)
	}
	resp.Body.Close()
	h, _, _ := v1.SHA256(bytes.NewReader(raw))
	return h
}

// TestDirWrite: a dir: image replaces the one before it and leaves none
// of its files; a failed copy leaves no manifest.json; a directory that
// is not a dir: image is refused.
func TestDirWrite(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	dir := filepath.Join(t.TempDir(), "img")
	ferryOK(t, "copy", "--foreign-allow", allowLoopback, e.Reg.Ref(fixture.Repo, fixture.IndexTag), "dir:"+dir)
	ferryOK(t, "copy", "--foreign-allow", allowLoopback, "--platform", "windows/amd64:"+fixture.OSVersion2, e.Reg.Ref(fixture.Repo, fixture.IndexTag), "dir:"+dir)
	if got := ferryOK(t, "digest", "dir:"+dir); got != e.Manifests[1].String() {
		t.Errorf("digest %s, want %s", got, e.Manifests[1])
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2+1+3 { // version, manifest.json, config, three layers
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("files left: %v", names)
	}

	failed := filepath.Join(t.TempDir(), "failed")
	e.URLs.Fail("/", 404, -1, "")
	if _, _, code := run(t, "copy", "--foreign", "include", "--foreign-allow", allowLoopback, e.Reg.Ref(fixture.Repo, fixture.SingleTag), "dir:"+failed); code != 1 {
		t.Fatalf("copy with unreachable foreign layers: exit %d, want 1", code)
	}
	if _, err := os.Stat(filepath.Join(failed, "manifest.json")); err == nil {
		t.Error("failed copy left a manifest.json")
	}

	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine"), 0o644)
	_, stderr, code := run(t, "copy", e.Reg.Ref(fixture.Repo, fixture.SingleTag), "dir:"+other)
	if code != 1 || !strings.Contains(stderr, "not a dir: image") {
		t.Errorf("copy into a non-image directory: exit %d, %s", code, stderr)
	}
}
