package mediatype

import (
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
