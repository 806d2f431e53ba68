package mediatype

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestMediaTypes(t *testing.T) {
	for in, want := range map[string]string{
		DockerForeign:  "application/vnd.docker.image.rootfs.diff.tar.gzip",
		OCINondist:     "application/vnd.oci.image.layer.v1.tar",
		OCINondistGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
		OCINondistZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
	} {
		if got, ok := Distributable(in); !ok || got != want || !IsForeign(in) {
			t.Errorf("Distributable(%s) = %s, %v", in, got, ok)
		}
	}
	for _, mt := range []string{
		"application/vnd.oci.image.layer.v1.tar+gzip",
		"application/vnd.docker.image.rootfs.diff.tar.gzip",
		"application/vnd.oci.image.manifest.v1+json",
		"",
	} {
		if IsForeign(mt) {
			t.Errorf("%q taken for foreign", mt)
		}
		if got, ok := Distributable(mt); ok || got != "" {
			t.Errorf("Distributable(%q) = %q, %v", mt, got, ok)
		}
	}
}

// TestForeignMatchesGGCR checks the table against go-containerregistry's
// names for the same types, so a typo in either shows.
func TestForeignMatchesGGCR(t *testing.T) {
	for _, mt := range []types.MediaType{types.DockerForeignLayer, types.OCIRestrictedLayer, types.OCIUncompressedRestrictedLayer} {
		if !IsForeign(string(mt)) {
			t.Errorf("%s not taken for foreign", mt)
		}
		if mt.IsDistributable() {
			t.Errorf("go-containerregistry takes %s for distributable", mt)
		}
	}
}

func TestManifests(t *testing.T) {
	if len(Manifests) != 4 {
		t.Fatalf("Manifests = %v, want 4 types", Manifests)
	}
	for i, mt := range Manifests {
		m := types.MediaType(mt)
		if !m.IsIndex() && !m.IsImage() {
			t.Errorf("%s is neither an index nor an image manifest", mt)
		}
		if i < 2 && !m.IsIndex() {
			t.Errorf("Manifests[%d] = %s, want the indexes first", i, mt)
		}
	}
}

func TestSniff(t *testing.T) {
	for body, want := range map[string]types.MediaType{
		`{"mediaType":"application/vnd.oci.artifact.manifest.v1+json"}`:                                              "application/vnd.oci.artifact.manifest.v1+json",
		`{"schemaVersion":1,"fsLayers":[]}`:                                                                          types.DockerManifestSchema1,
		`{"schemaVersion":2,"manifests":[]}`:                                                                         types.OCIImageIndex,
		`{"schemaVersion":2,"config":{"mediaType":"application/vnd.docker.container.image.v1+json"}}`:                types.DockerManifestSchema2,
		`{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json"}}`:                      types.OCIManifestSchema1,
		`{"schemaVersion":2,"config":{}}`:                                                                            types.OCIManifestSchema1,
		`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}`: types.DockerManifestList,
	} {
		got, err := Sniff([]byte(body))
		if err != nil || got != want {
			t.Errorf("Sniff(%s) = %q, %v; want %q", body, got, err, want)
		}
	}
	for _, body := range []string{"", "not json", `[]`, `{"schemaVersion":2}`, `{"layers":[]}`} {
		if got, err := Sniff([]byte(body)); err == nil {
			t.Errorf("Sniff(%q) = %q, want an error", body, got)
		}
	}
}

// TestForSchema checks the cross-schema table with go-containerregistry's
// names: each Docker layer type and its OCI counterpart, both ways, the
// foreign ones staying foreign; types of the manifest's own schema and
// types of neither left alone; OCI-only types refused for Docker.
func TestForSchema(t *testing.T) {
	docker, oci := string(types.DockerManifestSchema2), string(types.OCIManifestSchema1)
	if docker != DockerManifest || oci != OCIManifest {
		t.Fatalf("manifest constants %s, %s differ from go-containerregistry's", DockerManifest, OCIManifest)
	}
	pairs := []struct{ docker, oci types.MediaType }{
		{types.DockerLayer, types.OCILayer},
		{types.DockerUncompressedLayer, types.OCIUncompressedLayer},
		{types.DockerForeignLayer, types.OCIRestrictedLayer},
	}
	for _, p := range pairs {
		for _, c := range []struct{ in, manifest, want types.MediaType }{
			{p.docker, types.OCIManifestSchema1, p.oci},
			{p.oci, types.DockerManifestSchema2, p.docker},
			{p.docker, types.DockerManifestSchema2, p.docker},
			{p.oci, types.OCIManifestSchema1, p.oci},
			// Other manifest kinds are not touched.
			{p.docker, types.DockerManifestSchema1, p.docker},
			{p.oci, "application/vnd.oci.artifact.manifest.v1+json", p.oci},
		} {
			got, err := ForSchema(string(c.in), string(c.manifest))
			if err != nil || got != string(c.want) {
				t.Errorf("ForSchema(%s, %s) = %q, %v; want %s", c.in, c.manifest, got, err, c.want)
			}
			if IsForeign(string(c.in)) != IsForeign(got) {
				t.Errorf("ForSchema(%s, %s) = %s changes whether the layer is foreign", c.in, c.manifest, got)
			}
		}
	}
	for _, mt := range []string{"application/vnd.in-toto+json", "application/vnd.cncf.helm.chart.content.v1.tar+gzip", ""} {
		for _, m := range []string{docker, oci} {
			if got, err := ForSchema(mt, m); err != nil || got != mt {
				t.Errorf("ForSchema(%q, %s) = %q, %v; want it unchanged", mt, m, got, err)
			}
		}
	}
	for _, mt := range []string{string(types.OCILayerZStd), OCINondist, OCINondistZstd} {
		if got, err := ForSchema(mt, oci); err != nil || got != mt {
			t.Errorf("ForSchema(%s, OCI) = %q, %v", mt, got, err)
		}
		if got, err := ForSchema(mt, docker); !errors.Is(err, ErrNoCounterpart) || got != "" {
			t.Errorf("ForSchema(%s, Docker) = %q, %v; want ErrNoCounterpart", mt, got, err)
		}
	}
}

// TestLocalized: the ordinary type replacing a foreign one is of the
// manifest's schema whatever schema the foreign type was written in.
func TestLocalized(t *testing.T) {
	for _, c := range []struct{ in, manifest, want string }{
		{DockerForeign, DockerManifest, string(types.DockerLayer)},
		{DockerForeign, OCIManifest, string(types.OCILayer)},
		{OCINondistGzip, OCIManifest, string(types.OCILayer)},
		{OCINondistGzip, DockerManifest, string(types.DockerLayer)},
		{OCINondist, OCIManifest, string(types.OCIUncompressedLayer)},
		{OCINondist, DockerManifest, string(types.DockerUncompressedLayer)},
		// No Docker zstd layer: the OCI type stands.
		{OCINondistZstd, DockerManifest, string(types.OCILayerZStd)},
		{OCINondistZstd, OCIManifest, string(types.OCILayerZStd)},
	} {
		if got, ok := Localized(c.in, c.manifest); !ok || got != c.want {
			t.Errorf("Localized(%s, %s) = %q, %v; want %s", c.in, c.manifest, got, ok, c.want)
		}
	}
	if got, ok := Localized(string(types.OCILayer), OCIManifest); ok {
		t.Errorf("Localized of an ordinary layer = %q, true", got)
	}
}

// TestParseReferrer: the referrers API's artifactType is a manifest's own,
// else an image manifest's config media type (an index has none); the
// subject and annotations are read; a Docker manifest has no subject.
func TestParseReferrer(t *testing.T) {
	subject := "sha256:" + strings.Repeat("ab", 32)
	for _, c := range []struct {
		name, mt, raw string
		ok            bool
		want          Referrer
	}{
		{"manifest with artifactType", "", `{"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"a/sig","config":{"mediaType":"application/vnd.oci.empty.v1+json"},"subject":{"digest":"` + subject + `"},"annotations":{"k":"v"}}`,
			true, Referrer{Subject: subject, MediaType: types.OCIManifestSchema1, ArtifactType: "a/sig", Annotations: map[string]string{"k": "v"}}},
		{"manifest without artifactType, type from the push", "application/vnd.oci.image.manifest.v1+json", `{"config":{"mediaType":"a/cfg"},"subject":{"digest":"` + subject + `"}}`,
			true, Referrer{Subject: subject, MediaType: types.OCIManifestSchema1, ArtifactType: "a/cfg"}},
		{"index without subject", "", `{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`,
			true, Referrer{MediaType: types.OCIImageIndex}},
		{"docker manifest", "", `{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"a/cfg"},"subject":{"digest":"` + subject + `"}}`, false, Referrer{}},
		{"not JSON", "", `{`, false, Referrer{}},
	} {
		got, ok := ParseReferrer(types.MediaType(c.mt), []byte(c.raw))
		if ok != c.ok || fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: %+v, %v; want %+v, %v", c.name, got, ok, c.want, c.ok)
		}
	}
}
