package transfer

import (
	"bytes"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/mediatype"
)

// FuzzManifestDecoding feeds arbitrary manifest and index bytes to the
// decoders and rewriters the copy engine uses: errors, never panics; a
// localized manifest has no foreign layer left and still parses.
func FuzzManifestDecoding(f *testing.F) {
	f.Add([]byte(foreignManifest))
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:6c367cf4cb9815b10e47545dc9539ee4bd5cd0f8697d33f4d9cb1e1850546403","size":1}]}`))
	f.Add([]byte(`{"layers":[{"mediaType":1},null,[]],"manifests":{}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		v1.ParseManifest(bytes.NewReader(raw))
		v1.ParseIndexManifest(bytes.NewReader(raw))
		mt, _ := mediatype.Sniff(raw)
		localize := localizeIn(string(mt))
		out, changed, err := rewriteLayers(raw, localize)
		if err == nil && changed {
			again, changedAgain, err := rewriteLayers(out, localize)
			if err != nil || changedAgain || !bytes.Equal(again, out) {
				t.Fatalf("localize is not idempotent: %v %v", err, changedAgain)
			}
		}
		rewriteIndex(raw, map[v1.Hash]v1.Descriptor{}, map[v1.Hash]bool{})
	})
}
