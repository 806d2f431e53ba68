package ocilayout

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// FuzzIndex feeds arbitrary index.json and manifest bytes to the layout
// reader: it must return errors, never panic, and never serve a manifest
// whose bytes do not match its digest.
func FuzzIndex(f *testing.F) {
	manifest := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}`
	f.Add(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","annotations":{"org.opencontainers.image.ref.name":"v1"}}]}`, manifest, "v1")
	f.Add(`{"manifests":[{"digest":"sha256:../../etc/passwd","size":1}]}`, "{}", "")
	referrer := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.sbom","config":{"mediaType":"application/vnd.oci.empty.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}}`
	rd, _, _ := v1.SHA256(strings.NewReader(referrer))
	f.Add(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":`+strconv.Itoa(len(referrer))+`,"digest":"`+rd.String()+`"}]}`, referrer, "")
	f.Add(`{"manifests":[{"digest":"md5:00","size":-1}]}`, "", "x")
	f.Fuzz(func(t *testing.T, index, manifest, tag string) {
		d, _, _ := v1.SHA256(strings.NewReader(manifest))
		fsys := fstest.MapFS{
			"index.json":            {Data: []byte(index)},
			"blobs/sha256/" + d.Hex: {Data: []byte(manifest)},
			"blobs/sha256/44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a": {Data: []byte("{}")},
		}
		l := OpenFS("fuzz", fsys, tag, "")
		ctx := context.Background()
		// The referrers of the config blob: a manifest listed whose
		// subject names it, read through mediatype.ParseReferrer.
		subject := v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 2,
			Digest: v1.Hash{Algorithm: "sha256", Hex: "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}}
		if refs, err := l.Referrers(ctx, subject); err == nil {
			for _, r := range refs {
				if r.Digest != d {
					t.Fatalf("referrer %s listed; the layout's only manifest is %s", r.Digest, d)
				}
			}
		}
		desc, err := l.Resolve(ctx)
		if err != nil {
			return
		}
		raw, err := l.FetchManifest(ctx, desc)
		if err != nil {
			return
		}
		if got, _, _ := v1.SHA256(bytes.NewReader(raw)); got != desc.Digest {
			t.Fatalf("served %d bytes hashing to %s for %s", len(raw), got, desc.Digest)
		}
		if rc, err := l.FetchBlob(ctx, desc); err == nil {
			io.Copy(io.Discard, rc)
			rc.Close()
		}
	})
}
