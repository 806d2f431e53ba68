package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/store/ocilayout"
	"github.com/ferry-dev/ferry/syncer"
)

// rawManifest is a manifest to put as it is.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// putManifest puts raw in repo by digest (or under tag) and returns its
// descriptor.
func putManifest(t *testing.T, reg *fixture.Registry, repo, tag string, raw []byte, mt types.MediaType) v1.Descriptor {
	t.Helper()
	desc := blob.DescriptorOf(raw, mt)
	ident := "@" + desc.Digest.String()
	if tag != "" {
		ident = ":" + tag
	}
	ref, err := name.ParseReference(reg.Host + "/" + repo + ident)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(ref, rawManifest{raw, mt}); err != nil {
		t.Fatal(err)
	}
	return desc
}

// pushReferrer pushes an artifact of artifactType whose subject is
// subject (none in its manifest when asTagSchema: then it is listed
// under the subject's sha256-<hex> tag instead, as a registry without the
// referrers API keeps it).
func pushReferrer(t *testing.T, reg *fixture.Registry, repo string, subject v1.Descriptor, artifactType, content string) v1.Descriptor {
	t.Helper()
	repoRef, err := name.NewRepository(reg.Host + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	layer := static.NewLayer([]byte(content), "application/vnd.example.payload")
	if err := remote.WriteLayer(repoRef, layer); err != nil {
		t.Fatal(err)
	}
	empty := static.NewLayer([]byte("{}"), "application/vnd.oci.empty.v1+json")
	if err := remote.WriteLayer(repoRef, empty); err != nil {
		t.Fatal(err)
	}
	ld, _ := layer.Digest()
	ed, _ := empty.Digest()
	raw := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":%q,`+
		`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":2},`+
		`"layers":[{"mediaType":"application/vnd.example.payload","digest":%q,"size":%d}],`+
		`"subject":{"mediaType":%q,"digest":%q,"size":%d}}`,
		artifactType, ed, ld, len(content), subject.MediaType, subject.Digest, subject.Size)
	d := putManifest(t, reg, repo, "", []byte(raw), types.OCIManifestSchema1)
	d.ArtifactType = artifactType
	return d
}

// listedReferrers returns the artifact types of subject's referrers in
// repo, through the registry's referrers API, sorted.
func listedReferrers(t *testing.T, reg *fixture.Registry, repo string, subject v1.Hash) []string {
	t.Helper()
	resp, err := http.Get(reg.URL + "/v2/" + repo + "/referrers/" + subject.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var idx v1.IndexManifest
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&idx) != nil {
		t.Fatalf("referrers of %s: %s", subject, resp.Status)
	}
	return artifactTypes(idx.Manifests)
}

func artifactTypes(ds []v1.Descriptor) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ArtifactType)
	}
	sort.Strings(out)
	return out
}

// copyReferrers copies app:v1 with --referrers from src to dst and checks
// that dst's referrers API lists the signature and SBOM of the image and
// the attestation of the SBOM.
func copyReferrers(t *testing.T, what string, src, dst *fixture.Registry, image, sbom v1.Hash) {
	t.Helper()
	if _, stderr, code := run(t, "copy", "--referrers", src.Ref("app", "v1"), dst.Ref("app", "v1")); code != 0 {
		t.Fatalf("%s: copy --referrers: exit %d: %s", what, code, stderr)
	}
	if got := listedReferrers(t, dst, "app", image); strings.Join(got, " ") != sbomType+" "+sigType {
		t.Errorf("%s: destination lists %v as referrers of the image", what, got)
	}
	if got := listedReferrers(t, dst, "app", sbom); strings.Join(got, " ") != attType {
		t.Errorf("%s: destination lists %v as referrers of the sbom", what, got)
	}
}

const (
	sigType  = "application/vnd.dev.cosign.artifact.sig.v1+json"
	sbomType = "application/spdx+json"
	attType  = "application/vnd.in-toto+json"
)

func TestCopyReferrers(t *testing.T) {
	urls := fixture.NewURLServer(t)
	src := fixture.NewRegistry(t)
	img := urls.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.17763.1", Layers: 1, Seed: 5, OCI: true})
	id := src.Push(t, "app", "v1", img)
	subject := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: id}
	raw, _, _ := src.Manifest(t, "app", "v1")
	subject.Size = int64(len(raw))
	pushReferrer(t, src, "app", subject, sigType, "signature")
	sbom := pushReferrer(t, src, "app", subject, sbomType, "sbom")
	pushReferrer(t, src, "app", sbom, attType, "attestation of the sbom")

	// To a registry with the referrers API: listed there, recursively.
	dst := fixture.NewRegistry(t)
	copyReferrers(t, "to a registry with the API", src, dst, id, sbom.Digest)

	// To a registry without the API: under the tag schema.
	old := fixture.NewRegistry(t)
	old.Fail("GET", "/referrers/", 404, -1)
	if _, stderr, code := run(t, "copy", "--referrers", src.Ref("app", "v1"), old.Ref("app", "v1")); code != 0 {
		t.Fatalf("copy --referrers to a registry without the API: exit %d: %s", code, stderr)
	}
	idxRaw, _, _ := old.Manifest(t, "app", "sha256-"+id.Hex)
	var idx v1.IndexManifest
	if err := json.Unmarshal(idxRaw, &idx); err != nil {
		t.Fatal(err)
	}
	if got := artifactTypes(idx.Manifests); strings.Join(got, " ") != sbomType+" "+sigType {
		t.Errorf("tag schema index lists %v", got)
	}

	// From that registry (tag schema only) back to one with the API.
	copyReferrers(t, "from the tag schema", old, fixture.NewRegistry(t), id, sbom.Digest)

	// Without --referrers nothing but the image moves.
	none := fixture.NewRegistry(t)
	if _, stderr, code := run(t, "copy", src.Ref("app", "v1"), none.Ref("app", "v1")); code != 0 {
		t.Fatalf("copy: exit %d: %s", code, stderr)
	}
	if got := listedReferrers(t, none, "app", id); len(got) != 0 {
		t.Errorf("plain copy brought referrers %v", got)
	}

	// sync --referrers: a rerun brings a signature added since, though the
	// image itself is up to date.
	file := filepath.Join(t.TempDir(), "sync.yaml")
	os.WriteFile(file, []byte(src.Host+":\n  images:\n    app: [v1]\n  referrers: true\n"), 0o644)
	mirror := fixture.NewRegistry(t)
	if _, stderr, code := run(t, "sync", file, mirror.Host+"/m"); code != 0 {
		t.Fatalf("sync: exit %d: %s", code, stderr)
	}
	pushReferrer(t, src, "app", subject, "application/vnd.example.late", "late signature")
	out, stderr, code := run(t, "sync", file, mirror.Host+"/m")
	if code != 0 || !strings.Contains(out, "skipped ") {
		t.Fatalf("sync rerun: exit %d: %s %s", code, out, stderr)
	}
	if got := listedReferrers(t, mirror, "m/app", id); strings.Join(got, " ") != sbomType+" "+sigType+" application/vnd.example.late" {
		t.Errorf("sync mirror lists %v", got)
	}
	// The bytes of those new referrers are the image's bytes in the
	// report, as its copy summary counts them.
	late := "another late signature"
	pushReferrer(t, src, "app", subject, "application/vnd.example.later", late)
	out, stderr, code = run(t, "sync", "--json", file, mirror.Host+"/m")
	var rep syncer.Report
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil || len(rep.Images) != 1 {
		t.Fatalf("sync --json rerun: exit %d, %v: %s %s", code, err, out, stderr)
	}
	got := rep.Images[0]
	if got.Status != syncer.Skipped || got.Copy == nil || got.Bytes != int64(len(late)) || got.Bytes != got.Copy.Bytes || rep.Totals.Bytes != got.Bytes {
		t.Errorf("sync --json rerun bringing a %d-byte referrer: image %+v, copy %+v, totals %+v", len(late), got, got.Copy, rep.Totals)
	}
	// An image up to date whose new referrer the destination refuses has
	// failed: its report gives the error, not "up to date" beside it.
	pushReferrer(t, src, "app", subject, "application/vnd.example.refused", "refused signature")
	mirror.Fail(http.MethodPut, "/manifests/", http.StatusForbidden, -1)
	out, stderr, code = run(t, "sync", "--json", file, mirror.Host+"/m")
	rep = syncer.Report{}
	// The report, then (--json) the error's own object.
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&rep); code != 1 || err != nil || len(rep.Images) != 1 {
		t.Fatalf("sync --json rerun, referrer refused: exit %d, %v: %s %s", code, err, out, stderr)
	}
	if got := rep.Images[0]; got.Status != syncer.Failed || got.Error == "" || got.Reason != "" {
		t.Errorf("image whose referrer was refused: status %s, reason %q, error %q; want failed, no reason, the error", got.Status, got.Reason, got.Error)
	}
}

// layoutReferrers returns the artifact types of subject's referrers in the
// OCI layout at dir, as the layout store lists them, sorted.
func layoutReferrers(t *testing.T, dir string, subject v1.Descriptor) []string {
	t.Helper()
	refs, err := ocilayout.Open(dir, "", "").Referrers(context.Background(), subject)
	if err != nil {
		t.Fatal(err)
	}
	return artifactTypes(refs)
}

// untaggedEntries returns index.json's untagged entries in the layout at
// dir by digest, read as the file says.
func untaggedEntries(t *testing.T, dir string) map[v1.Hash]v1.Descriptor {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	out := map[v1.Hash]v1.Descriptor{}
	for _, d := range idx.Manifests {
		if d.Annotations[ocilayout.RefNameAnnotation] != "" {
			continue
		}
		if _, dup := out[d.Digest]; dup {
			t.Errorf("index.json lists %s twice", d.Digest)
		}
		out[d.Digest] = d
	}
	return out
}

// TestCopyReferrersToLayout: copy --referrers from a registry into an OCI
// layout lists the image's signature and SBOM (and the SBOM's
// attestation) as untagged index.json entries with their artifactType,
// once however often it runs; the layout lists them as referrers, and
// copies them on with --referrers; sync --referrers into a layout does the
// same, and its rerun brings a signature added since. regctl, when on
// PATH, finds them too.
func TestCopyReferrersToLayout(t *testing.T) {
	urls := fixture.NewURLServer(t)
	src := fixture.NewRegistry(t)
	img := urls.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.17763.1", Layers: 1, Seed: 6, OCI: true})
	id := src.Push(t, "app", "v1", img)
	raw, _, _ := src.Manifest(t, "app", "v1")
	subject := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: id, Size: int64(len(raw))}
	sig := pushReferrer(t, src, "app", subject, sigType, "signature")
	sbom := pushReferrer(t, src, "app", subject, sbomType, "sbom")
	att := pushReferrer(t, src, "app", sbom, attType, "attestation of the sbom")

	dir := filepath.Join(t.TempDir(), "layout")
	for range 2 {
		if _, stderr, code := run(t, "copy", "--referrers", src.Ref("app", "v1"), "oci:"+dir+":v1"); code != 0 {
			t.Fatalf("copy --referrers to oci:%s: exit %d: %s", dir, code, stderr)
		}
	}
	entries := untaggedEntries(t, dir)
	for _, want := range []v1.Descriptor{sig, sbom, att} {
		got, ok := entries[want.Digest]
		if !ok || got.ArtifactType != want.ArtifactType || got.Size != want.Size || got.MediaType != types.OCIManifestSchema1 {
			t.Errorf("index.json lists %s as %+v (listed: %v), want an untagged %s entry", want.Digest, got, ok, want.ArtifactType)
		}
	}
	if len(entries) != 3 {
		t.Errorf("index.json has %d untagged entries, want the 3 referrers: %v", len(entries), entries)
	}
	if got := layoutReferrers(t, dir, subject); strings.Join(got, " ") != sbomType+" "+sigType {
		t.Errorf("the layout lists %v as referrers of the image", got)
	}
	if got := layoutReferrers(t, dir, sbom); strings.Join(got, " ") != attType {
		t.Errorf("the layout lists %v as referrers of the sbom", got)
	}
	if out, stderr, code := run(t, "inspect", "--raw", "oci:"+dir); code != 0 || !strings.Contains(out, `"layers"`) {
		t.Errorf("inspect oci:%s (its only image, beside the referrers): exit %d: %s %s", dir, code, out, stderr)
	}

	// From the layout on to a registry: the layout is a referrers source.
	on := fixture.NewRegistry(t)
	if _, stderr, code := run(t, "copy", "--referrers", "oci:"+dir+":v1", on.Ref("app", "v1")); code != 0 {
		t.Fatalf("copy --referrers from oci:%s: exit %d: %s", dir, code, stderr)
	}
	if got := listedReferrers(t, on, "app", id); strings.Join(got, " ") != sbomType+" "+sigType {
		t.Errorf("copied on from the layout: the registry lists %v as referrers of the image", got)
	}
	if got := listedReferrers(t, on, "app", sbom.Digest); strings.Join(got, " ") != attType {
		t.Errorf("copied on from the layout: the registry lists %v as referrers of the sbom", got)
	}

	// sync --referrers into a layout, and a rerun with the image up to
	// date brings a signature added since.
	file := filepath.Join(t.TempDir(), "sync.yaml")
	os.WriteFile(file, []byte(src.Host+":\n  images:\n    app: [v1]\n  referrers: true\n"), 0o644)
	synced := filepath.Join(t.TempDir(), "synced")
	if _, stderr, code := run(t, "sync", file, "oci:"+synced); code != 0 {
		t.Fatalf("sync to oci:%s: exit %d: %s", synced, code, stderr)
	}
	pushReferrer(t, src, "app", subject, "application/vnd.example.late", "late signature")
	if out, stderr, code := run(t, "sync", file, "oci:"+synced); code != 0 || !strings.Contains(out, "skipped ") {
		t.Fatalf("sync rerun: exit %d: %s %s", code, out, stderr)
	}
	if got := layoutReferrers(t, synced, subject); strings.Join(got, " ") != sbomType+" "+sigType+" application/vnd.example.late" {
		t.Errorf("the synced layout lists %v as referrers of the image", got)
	}
	if got := len(untaggedEntries(t, synced)); got != 4 {
		t.Errorf("the synced layout's index.json has %d untagged entries, want 4 referrers", got)
	}

	t.Run("regctl", func(t *testing.T) {
		regctl, err := exec.LookPath("regctl")
		if err != nil {
			t.Skip("regctl is not on PATH")
		}
		cmd := exec.Command(regctl, "artifact", "list", "--slow-referrers", "--format", "{{range .Descriptors}}{{.ArtifactType}} {{.Digest}}\n{{end}}", "ocidir://"+dir+":v1")
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("regctl artifact list: %v\n%s", err, out)
		}
		for _, want := range []v1.Descriptor{sig, sbom} {
			if !strings.Contains(string(out), want.ArtifactType+" "+want.Digest.String()) {
				t.Errorf("regctl artifact list does not list %s %s:\n%s", want.ArtifactType, want.Digest, out)
			}
		}
	})
}
