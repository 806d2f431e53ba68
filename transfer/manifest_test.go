package transfer

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/foreign"
	"github.com/ferry-dev/ferry/mediatype"
)

const foreignManifest = `{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 774, "digest": "sha256:6c367cf4cb9815b10e47545dc9539ee4bd5cd0f8697d33f4d9cb1e1850546403"},
   "layers": [
      {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "size": 252691002,
       "digest": "sha256:bce2fbc256ea437a87dadac2f69aabd25bed4f56255549090056c1131fad0277",
       "urls": ["https://go.microsoft.com/fwlink/?linkid=837858&clcid=0x409"]},
      {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 125427565,
       "digest": "sha256:e1870ee27293b87c78bf45e078f94acd29c44a0a7963c91932c5c31dfbeeb510",
       "x-extra": {"kept": true}}
   ]
}`

func TestLocalizeRewritesOnlyForeignDescriptors(t *testing.T) {
	out, changed, err := rewriteLayers([]byte(foreignManifest), localizeIn(mediatype.DockerManifest))
	if err != nil || !changed {
		t.Fatalf("changed=%v err=%v", changed, err)
	}
	s := string(out)
	for _, bad := range []string{"foreign", "urls", "fwlink"} {
		if strings.Contains(s, bad) {
			t.Errorf("localized manifest still contains %q: %s", bad, s)
		}
	}
	for _, keep := range []string{`"size":252691002`, `"x-extra":{"kept":true}`, "6c367cf4cb98", `"schemaVersion":2`} {
		if !strings.Contains(s, keep) {
			t.Errorf("localized manifest lost %q: %s", keep, s)
		}
	}
	if _, changed, _ := rewriteLayers(out, localizeIn(mediatype.DockerManifest)); changed {
		t.Error("localizing twice changed the manifest again")
	}
}

func TestRewriteURLsKeepsAmpersands(t *testing.T) {
	out, changed, err := rewriteLayers([]byte(foreignManifest), rewriteURLs(nil))
	if err != nil || changed || string(out) != foreignManifest {
		t.Fatalf("no rules must leave the bytes alone: %v %v", changed, err)
	}
	out, changed, err = rewriteLayers([]byte(foreignManifest), rewriteURLs([]foreign.Rewrite{{From: "https://go.microsoft.com/", To: "http://mirror.corp/"}}))
	if err != nil || !changed || !strings.Contains(string(out), `"http://mirror.corp/fwlink/?linkid=837858&clcid=0x409"`) {
		t.Fatalf("rewrite: %v %v %s", changed, err, out)
	}
}

func TestRewriteIndex(t *testing.T) {
	a := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}
	b := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("b", 64)}
	n := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("c", 64)}
	idx := `{"schemaVersion":2,"manifests":[{"digest":"` + a.String() + `","size":1,"platform":{"os":"windows","architecture":"amd64","os.version":"10.0.17763.1"}},{"digest":"` + b.String() + `","size":2}]}`
	out, changed, err := rewriteIndex([]byte(idx), map[v1.Hash]v1.Descriptor{a: {Digest: n, Size: 9}}, nil)
	if err != nil || !changed || !strings.Contains(string(out), n.String()) || strings.Contains(string(out), a.String()) || !strings.Contains(string(out), `"os.version":"10.0.17763.1"`) {
		t.Fatalf("%v %v %s", changed, err, out)
	}
	out, _, _ = rewriteIndex([]byte(idx), nil, map[v1.Hash]bool{b: true})
	if strings.Contains(string(out), a.String()) || !strings.Contains(string(out), b.String()) {
		t.Fatalf("filter: %s", out)
	}
}

// TestLocalizeFollowsTheManifestSchema: the ordinary type a foreign layer
// gets is of the manifest's own schema, whichever schema its foreign type
// was written in (an OCI manifest carrying Docker's foreign type, as old
// rebases wrote, gets the OCI layer type).
func TestLocalizeFollowsTheManifestSchema(t *testing.T) {
	for _, c := range []struct{ manifest, layer, want string }{
		{mediatype.OCIManifest, mediatype.OCINondistGzip, "application/vnd.oci.image.layer.v1.tar+gzip"},
		{mediatype.OCIManifest, mediatype.DockerForeign, "application/vnd.oci.image.layer.v1.tar+gzip"},
		{mediatype.DockerManifest, mediatype.DockerForeign, "application/vnd.docker.image.rootfs.diff.tar.gzip"},
		{mediatype.DockerManifest, mediatype.OCINondistGzip, "application/vnd.docker.image.rootfs.diff.tar.gzip"},
	} {
		raw := strings.NewReplacer(`"application/vnd.docker.distribution.manifest.v2+json"`, `"`+c.manifest+`"`,
			`"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"`, `"`+c.layer+`"`).Replace(foreignManifest)
		out, changed, err := localizeManifest([]byte(raw), c.manifest)
		if err != nil || !changed {
			t.Fatalf("%s: changed=%v err=%v", c.manifest, changed, err)
		}
		m, err := v1.ParseManifest(strings.NewReader(string(out)))
		if err != nil {
			t.Fatal(err)
		}
		// Both layers, the ordinary one written with Docker's type too, are
		// of the manifest's schema.
		for i, l := range m.Layers {
			if got := string(l.MediaType); got != c.want || len(l.URLs) != 0 {
				t.Errorf("%s layer %d in a %s: localized to %s %v, want %s without urls", c.layer, i, c.manifest, got, l.URLs, c.want)
			}
		}
		if m.Layers[0].Digest.Hex != "bce2fbc256ea437a87dadac2f69aabd25bed4f56255549090056c1131fad0277" {
			t.Errorf("digest changed: %s", m.Layers[0].Digest)
		}
	}
	// Without a foreign layer, localize leaves even a mixed manifest as
	// it is (same digest).
	mixed := strings.Replace(foreignManifest, `"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"`, `"application/vnd.docker.image.rootfs.diff.tar.gzip"`, 1)
	mixed = strings.Replace(mixed, `"application/vnd.docker.distribution.manifest.v2+json"`, `"`+mediatype.OCIManifest+`"`, 1)
	if out, changed, err := localizeManifest([]byte(mixed), mediatype.OCIManifest); err != nil || changed || string(out) != mixed {
		t.Errorf("no foreign layer: changed=%v err=%v", changed, err)
	}
	b, err := NewBlobs(WithForeign(Localize))
	if err != nil {
		t.Fatal(err)
	}
	d := b.Descriptor(v1.Descriptor{MediaType: types.DockerForeignLayer, URLs: []string{"https://x/y"}}, types.OCIManifestSchema1)
	if d.MediaType != types.OCILayer || d.URLs != nil {
		t.Errorf("Blobs.Descriptor localized into an OCI manifest: %+v", d)
	}
}
