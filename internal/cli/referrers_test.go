package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
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
}
