package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
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

// mixedLayout writes to a new OCI layout, tagged "mixed", an image as
// older ferry rebases wrote them: an OCI manifest and config listing
// Docker layer types, a foreign layer (its bytes in the layout and at
// its URL) and an ordinary one. It returns the layout's directory and
// the image.
func mixedLayout(t *testing.T, urls *fixture.URLServer) (string, v1.Image) {
	t.Helper()
	docker := urls.WindowsImage(t, fixture.ImageSpec{OSVersion: ltsc2022, ForeignLayers: 1, Layers: 1, Seed: 5})
	img := mutate.ConfigMediaType(mutate.MediaType(docker, types.OCIManifestSchema1), types.OCIConfigJSON)
	m := manifestOf(t, img)
	if m.MediaType != types.OCIManifestSchema1 || m.Layers[0].MediaType != types.DockerForeignLayer || len(m.Layers[0].URLs) != 1 {
		t.Fatalf("not the mixed manifest meant: %+v", m)
	}
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "mixed"})); err != nil {
		t.Fatal(err)
	}
	return dir, img
}

// TestLocalizeAndAppendFollowTheManifestSchema: copy --foreign localize
// of an OCI manifest whose layers carry Docker types gives OCI layer
// types (before, the foreign layer became a Docker layer in an OCI
// manifest); append on such a base lists the base's foreign layer as an
// OCI non-distributable layer with its URL, which the registry accepts
// without the blob (before, it refused the Docker foreign type in an OCI
// manifest: MANIFEST_BLOB_UNKNOWN). Digests never change.
func TestLocalizeAndAppendFollowTheManifestSchema(t *testing.T) {
	reg, urls := fixture.NewRegistry(t), fixture.NewURLServer(t)
	dir, img := mixedLayout(t, urls)
	im := manifestOf(t, img)
	oci := schemaLayerTypes[types.OCIManifestSchema1]

	ferryOK(t, "copy", "--foreign", "localize", "--foreign-allow", allowLoopback, "oci:"+dir+":mixed", reg.Ref("app/localized", "1"))
	w := readImage(t, reg, "app/localized", "1")
	validate(t, reg, "app/localized", w)
	if w.manifest.MediaType != types.OCIManifestSchema1 || w.manifest.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("localized manifest %s, config %s", w.manifest.MediaType, w.manifest.Config.MediaType)
	}
	for i, l := range w.manifest.Layers {
		if l.MediaType != oci.ordinary || len(l.URLs) != 0 || l.Digest != im.Layers[i].Digest {
			t.Errorf("localized layer %d: %s %s %v, want %s %s without urls", i, l.MediaType, l.Digest, l.URLs, oci.ordinary, im.Layers[i].Digest)
		}
	}

	layer := filepath.Join(t.TempDir(), "layer.tar.gz")
	mustWrite(t, layer, fixture.LayerTar(9, 0, 1<<10))
	ferryOK(t, "append", "--base", "oci:"+dir+":mixed", "-t", reg.Ref("app/appended", "1"), "--layer", layer)
	w = readImage(t, reg, "app/appended", "1")
	validate(t, reg, "app/appended", w)
	if w.manifest.MediaType != types.OCIManifestSchema1 || len(w.manifest.Layers) != 3 {
		t.Fatalf("appended manifest %s with %d layers", w.manifest.MediaType, len(w.manifest.Layers))
	}
	checkLayersAs(t, "base layers", types.OCIManifestSchema1, w.manifest.Layers[:2], im.Layers)
	if l := w.manifest.Layers[2]; l.MediaType != oci.ordinary {
		t.Errorf("appended layer is a %s, want %s", l.MediaType, oci.ordinary)
	}
}

// TestIndexCreateMixedSchemas: an index of a Docker and an OCI image is
// an OCI index listing each with its own manifest type, unchanged (a
// Docker manifest list lists Docker manifests only); an index of Docker
// images alone is a Docker manifest list.
func TestIndexCreateMixedSchemas(t *testing.T) {
	reg, urls := fixture.NewRegistry(t), fixture.NewURLServer(t)
	d19 := urls.WindowsImage(t, fixture.ImageSpec{OSVersion: ltsc2019, ForeignLayers: 1, Layers: 1, Seed: 1})
	d22 := urls.WindowsImage(t, fixture.ImageSpec{OSVersion: ltsc2022, ForeignLayers: 1, Layers: 1, Seed: 2})
	o22 := urls.WindowsImage(t, fixture.ImageSpec{OSVersion: ltsc2022, ForeignLayers: 1, Layers: 1, Seed: 3, OCI: true})
	ids := map[string]v1.Hash{}
	for tag, img := range map[string]v1.Image{"d19": d19, "d22": d22, "o22": o22} {
		ids[tag] = reg.Push(t, "app/web", tag, img)
	}
	for _, c := range []struct {
		tags []string
		want types.MediaType
	}{
		{[]string{"d19", "o22"}, types.OCIImageIndex},
		{[]string{"d19", "d22"}, types.DockerManifestList},
	} {
		args := []string{"index", "create", reg.Ref("app/web", "multi-"+strings.Join(c.tags, "-"))}
		for _, tag := range c.tags {
			args = append(args, reg.Ref("app/web", tag))
		}
		ferryOK(t, args...)
		idx, _ := readIndex(t, reg, "app/web", "multi-"+strings.Join(c.tags, "-"))
		if idx.MediaType != c.want || len(idx.Manifests) != len(c.tags) {
			t.Fatalf("index of %v: %s with %d entries, want a %s", c.tags, idx.MediaType, len(idx.Manifests), c.want)
		}
		for i, tag := range c.tags {
			wantType := types.DockerManifestSchema2
			if tag[0] == 'o' {
				wantType = types.OCIManifestSchema1
			}
			if e := idx.Manifests[i]; e.Digest != ids[tag] || e.MediaType != wantType {
				t.Errorf("index of %v: entry %d is %s %s, want %s %s, unchanged", c.tags, i, e.MediaType, e.Digest, wantType, ids[tag])
			}
		}
	}
}
