package imagemod

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/store"
)

// AnnotationTitle names a layer's file (OCI image spec, pre-defined
// annotation key).
const AnnotationTitle = "org.opencontainers.image.title"

// emptyConfig is the OCI empty descriptor's content, the config of an
// artifact that has none (OCI image spec 1.1, "Guidance for an empty
// descriptor").
var emptyConfig = []byte("{}")

// Attach writes to dst an OCI artifact manifest whose subject is subject
// and whose one layer is the file at path: artifactType is both the
// manifest's artifactType and the layer's media type, the config is the
// OCI empty descriptor, and the layer's org.opencontainers.image.title is
// the file's base name — how an SBOM, a signature or an attestation is
// attached to an image (OCI image spec 1.1, artifacts guidance). The
// manifest is the same bytes for the same inputs, so attaching twice
// writes one referrer.
//
// The file is hashed while read, then uploaded with the config through
// WithBlobs' Blobs (skipped when dst has them, verified, retried). The
// manifest is stored by digest, untagged, and, where dst keeps referrers
// (store.Referrers), recorded as a referrer of subject: a registry lists
// it by itself when it has the referrers API, else it is added under the
// referrers tag schema (sha256-<hex>); an OCI layout lists it as an
// untagged index.json entry. A store without referrers gets the manifest
// only.
//
// Options: WithAnnotations (the manifest's), WithBlobs.
func Attach(ctx context.Context, dst store.Target, subject v1.Descriptor, artifactType, path string, opts ...Option) (v1.Descriptor, error) {
	o, err := makeOptions("attach", opts, "annotations")
	if err != nil {
		return v1.Descriptor{}, err
	}
	if artifactType == "" {
		return v1.Descriptor{}, errors.New("attach: no artifact type")
	}
	if subject.Digest.Hex == "" || subject.MediaType == "" || subject.Size <= 0 {
		return v1.Descriptor{}, fmt.Errorf("attach %s: the subject needs a media type, digest and size", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("attach: %w", err)
	}
	digest, size, err := v1.SHA256(f)
	f.Close()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("attach %s: %w", path, err)
	}
	layer := v1.Descriptor{MediaType: types.MediaType(artifactType), Digest: digest, Size: size,
		Annotations: map[string]string{AnnotationTitle: filepath.Base(path)}}
	cfg := blob.DescriptorOf(emptyConfig, types.OCIEmptyJSON)
	m := &v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: artifactType,
		Config: cfg, Layers: []v1.Descriptor{layer}, Subject: &v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}}
	if len(o.annotations) > 0 {
		m.Annotations = o.annotations
	}
	raw, err := encode(m)
	if err != nil {
		return v1.Descriptor{}, err
	}
	desc := blob.DescriptorOf(raw, types.OCIManifestSchema1)
	desc.ArtifactType = artifactType

	src := looseBlobs{name: path, open: map[v1.Hash]func() (io.ReadCloser, error){
		cfg.Digest:   func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(emptyConfig)), nil },
		layer.Digest: func() (io.ReadCloser, error) { return os.Open(path) },
	}}
	if _, err := o.blobs.Copy(ctx, src, dst, []v1.Descriptor{cfg, layer}); err != nil {
		return v1.Descriptor{}, fmt.Errorf("attach %s: %w", path, err)
	}
	if err := dst.PushManifest(ctx, desc, raw); err != nil {
		return v1.Descriptor{}, fmt.Errorf("attach %s: manifest %s: %w", path, desc.Digest, err)
	}
	if r, ok := dst.(store.Referrers); ok {
		if err := r.AddReferrer(ctx, subject, desc); err != nil {
			return v1.Descriptor{}, fmt.Errorf("attach %s: recording it as a referrer of %s: %w", path, subject.Digest, err)
		}
	}
	return desc, nil
}
