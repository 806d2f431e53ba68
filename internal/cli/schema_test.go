package cli

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

// schemaLayerTypes are the ordinary and foreign gzip layer types of a
// manifest schema, written out here rather than taken from ferry's own
// table.
var schemaLayerTypes = map[types.MediaType]struct{ ordinary, foreign types.MediaType }{
	types.DockerManifestSchema2: {types.DockerLayer, types.DockerForeignLayer},
	types.OCIManifestSchema1:    {types.OCILayer, types.OCIRestrictedLayer},
}

// pushRemote writes img to ref with go-containerregistry, which leaves
// foreign layers out as Microsoft's registry does.
func pushRemote(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// getManifest reads a manifest back with go-containerregistry.
func getManifest(t *testing.T, ref string) (*v1.Manifest, types.MediaType) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Get(r)
	if err != nil {
		t.Fatalf("get %s: %v", ref, err)
	}
	m, err := v1.ParseManifest(strings.NewReader(string(d.Manifest)))
	if err != nil {
		t.Fatal(err)
	}
	return m, d.MediaType
}

// checkLayersAs checks that got lists the blobs of want (digest, size,
// urls) in order, each under the layer type of the manifest schema mt
// with the same role (foreign or not) as in want.
func checkLayersAs(t *testing.T, what string, mt types.MediaType, got, want []v1.Descriptor) {
	t.Helper()
	lt, ok := schemaLayerTypes[mt]
	if !ok {
		t.Fatalf("%s: manifest type %s", what, mt)
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d layers, want %d", what, len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		wantType := lt.ordinary
		if !w.MediaType.IsDistributable() {
			wantType = lt.foreign
		}
		if g.MediaType != wantType {
			t.Errorf("%s: layer %d is a %s in a %s, want %s", what, i, g.MediaType, mt, wantType)
		}
		if g.Digest != w.Digest || g.Size != w.Size || strings.Join(g.URLs, " ") != strings.Join(w.URLs, " ") {
			t.Errorf("%s: layer %d is %s (%d bytes, urls %v), want %s (%d bytes, urls %v)", what, i, g.Digest, g.Size, g.URLs, w.Digest, w.Size, w.URLs)
		}
	}
}

// TestRebaseAcrossSchemasReferenceRegistry rebases an OCI application
// (non-distributable base layers) onto a Docker schema 2 base with
// foreign layers, as every MCR base is, and a Docker application onto an
// OCI base, into distribution's reference registry (foreign URLs allowed).
// The registry accepts each result — it refuses a manifest of one schema
// listing the other's foreign type (MANIFEST_BLOB_UNKNOWN) — and crane
// validate --remote, fetching the foreign layers from their URLs, passes.
// Every descriptor is read back: the manifest and config types are the
// app's, each layer of the new base is listed under the app's schema with
// its digest, size and urls, the app's layers unchanged.
func TestRebaseAcrossSchemasReferenceRegistry(t *testing.T) {
	bin, crane := lookTool(t, "registry"), lookTool(t, "crane")
	host, _ := startReferenceRegistry(t, bin, t.TempDir())
	urls := fixture.NewURLServer(t)
	// crane fetches foreign layers from any host but an IP literal of a
	// loopback or private address: name the URL server by host name.
	urls.URL = strings.Replace(urls.URL, "127.0.0.1", "localhost", 1)
	image := func(osVersion string, seed int64, oci bool) v1.Image {
		return urls.WindowsImage(t, fixture.ImageSpec{OSVersion: osVersion, ForeignLayers: 2, Layers: 1, Seed: seed, OCI: oci})
	}
	for _, c := range []struct {
		name             string
		oldBase, newBase v1.Image
	}{
		{"oci-app-on-docker-base", image(patchA, 1, true), image(patchB, 2, false)},
		{"docker-app-on-oci-base", image(patchA, 3, false), image(patchB, 4, true)},
	} {
		t.Run(c.name, func(t *testing.T) {
			app := appOn(t, c.oldBase, 7, nil)
			ref := func(repo, tag string) string { return host + "/" + c.name + "/" + repo + ":" + tag }
			pushRemote(t, ref("base", "old"), c.oldBase)
			pushRemote(t, ref("base", "new"), c.newBase)
			pushRemote(t, ref("app", "1"), app)
			ferryOK(t, "rebase", ref("app", "1"), "--old-base", ref("base", "old"), "--new-base", ref("base", "new"), "-t", ref("app", "rebased"))

			m, mt := getManifest(t, ref("app", "rebased"))
			am, bm, om := manifestOf(t, app), manifestOf(t, c.newBase), manifestOf(t, c.oldBase)
			appType, _ := app.MediaType()
			if mt != appType || m.MediaType != appType {
				t.Errorf("rebased manifest is a %s (field %s), want the app's %s", mt, m.MediaType, appType)
			}
			if m.Config.MediaType != am.Config.MediaType {
				t.Errorf("config type %s, want the app's %s", m.Config.MediaType, am.Config.MediaType)
			}
			k := len(bm.Layers)
			if len(m.Layers) != k+len(am.Layers)-len(om.Layers) {
				t.Fatalf("%d layers, want %d of the new base and %d of the app", len(m.Layers), k, len(am.Layers)-len(om.Layers))
			}
			checkLayersAs(t, "new base layers", appType, m.Layers[:k], bm.Layers)
			checkLayersAs(t, "app layers", appType, m.Layers[k:], am.Layers[len(om.Layers):])
			runTool(t, crane, "validate", "--remote", ref("app", "rebased"))
		})
	}
}
