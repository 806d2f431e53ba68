// Package mediatype holds the facts about OCI and Docker media types that
// every store, the copy engine and the fetcher share: which layer types are
// foreign (non-distributable) and their ordinary counterparts, how a
// layer type reads in the other schema (Docker schema 2 or OCI), which
// manifest types ferry reads, how large a manifest may be, and what a
// manifest body without a mediaType field is.
//
// It is a leaf: it does no I/O and imports nothing of ferry's.
package mediatype

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

// MaxManifestSize bounds the manifests and indexes ferry reads, in bytes:
// 4 MiB, distribution's own limit on a manifest body
// (handlers.maxManifestBodySize, so a registry refuses larger pushes) and
// containerd's.
const MaxManifestSize = 4 << 20

// MaxIndexDepth bounds how deeply indexes may nest (an index listing an
// index listing ...): the copy engine refuses deeper ones and
// registry.Repo.Pointers follows no deeper.
const MaxIndexDepth = 4

// Foreign (non-distributable) layer media types. Registries do not hold
// such blobs; clients download them from the descriptor's urls.
const (
	// DockerForeign is Docker's foreign layer, e.g. a Windows base layer.
	DockerForeign = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	// OCINondist is the OCI non-distributable uncompressed layer.
	OCINondist = "application/vnd.oci.image.layer.nondistributable.v1.tar"
	// OCINondistGzip is the OCI non-distributable gzip layer.
	OCINondistGzip = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
	// OCINondistZstd is the OCI non-distributable zstd layer.
	OCINondistZstd = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
)

var distributable = map[string]string{
	DockerForeign:  "application/vnd.docker.image.rootfs.diff.tar.gzip",
	OCINondist:     "application/vnd.oci.image.layer.v1.tar",
	OCINondistGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
	OCINondistZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
}

// IsForeign reports whether mediaType is a foreign layer type.
func IsForeign(mediaType string) bool {
	_, ok := distributable[mediaType]
	return ok
}

// Distributable returns the ordinary layer type with the same content
// encoding as a foreign one (Docker foreign: the Docker layer type;
// OCI non-distributable: the OCI layer type with the same suffix), and
// false when mediaType is not foreign.
func Distributable(mediaType string) (string, bool) {
	d, ok := distributable[mediaType]
	return d, ok
}

// Manifest media types whose layer types ForSchema maps.
const (
	// DockerManifest is Docker's image manifest, schema 2.
	DockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	// OCIManifest is the OCI image manifest.
	OCIManifest = "application/vnd.oci.image.manifest.v1+json"
)

// ErrNoCounterpart means a layer media type has no equivalent in the
// schema of the manifest that is to list it (zstd and uncompressed
// non-distributable layers exist in OCI only).
var ErrNoCounterpart = errors.New("no counterpart in the manifest's schema")

// Layer types with the same role (ordinary or foreign) and the same
// encoding in the two schemas. Docker schema 2 has no zstd layer and no
// uncompressed foreign layer.
var (
	dockerToOCI = map[string]string{
		"application/vnd.docker.image.rootfs.diff.tar.gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
		"application/vnd.docker.image.rootfs.diff.tar":      "application/vnd.oci.image.layer.v1.tar",
		DockerForeign: OCINondistGzip,
	}
	ociToDocker = invert(dockerToOCI)
	// ociOnly are the OCI layer types with no Docker counterpart.
	ociOnly = map[string]bool{
		"application/vnd.oci.image.layer.v1.tar+zstd": true,
		OCINondist:     true,
		OCINondistZstd: true,
	}
)

func invert(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

// ForSchema returns the media type under which a manifest of type
// manifestType lists a layer of type layerType, so that one manifest never
// mixes Docker and OCI types: in an OCI manifest a Docker layer becomes
// the OCI layer with the same role and encoding
// (application/vnd.docker.image.rootfs.foreign.diff.tar.gzip becomes
// application/vnd.oci.image.layer.nondistributable.v1.tar+gzip,
// application/vnd.docker.image.rootfs.diff.tar.gzip becomes
// application/vnd.oci.image.layer.v1.tar+gzip), in a Docker schema 2
// manifest the reverse. The bytes, and so the digest, are the same under
// either name. A type already of the manifest's schema, a type of neither
// schema (an artifact's), and any type in another kind of manifest come
// back unchanged. An OCI-only type (zstd, uncompressed non-distributable)
// bound for a Docker manifest is an error wrapping ErrNoCounterpart.
func ForSchema(layerType, manifestType string) (string, error) {
	switch manifestType {
	case OCIManifest:
		if to, ok := dockerToOCI[layerType]; ok {
			return to, nil
		}
	case DockerManifest:
		if to, ok := ociToDocker[layerType]; ok {
			return to, nil
		}
		if ociOnly[layerType] {
			return "", fmt.Errorf("layer type %s in a Docker schema 2 manifest: %w (Docker has no such layer type; an OCI image manifest can list it)", layerType, ErrNoCounterpart)
		}
	}
	return layerType, nil
}

// Localized returns the ordinary layer type that replaces the foreign
// type layerType in a manifest of type manifestType: Distributable's
// answer, in the manifest's own schema (ForSchema) — so an OCI manifest
// whose foreign layer was written with Docker's type gets
// application/vnd.oci.image.layer.v1.tar+gzip, not Docker's. Where the
// schema has no counterpart, Distributable's answer stands. It returns
// false when layerType is not foreign.
func Localized(layerType, manifestType string) (string, bool) {
	to, ok := Distributable(layerType)
	if !ok {
		return "", false
	}
	if s, err := ForSchema(to, manifestType); err == nil {
		to = s
	}
	return to, true
}

// Manifests lists every manifest media type ferry reads, indexes first:
// what a registry client puts in its Accept header.
var Manifests = []string{
	string(types.OCIImageIndex),
	string(types.DockerManifestList),
	string(types.OCIManifestSchema1),
	string(types.DockerManifestSchema2),
}

// Sniff returns a manifest's media type: its mediaType field, or, when it
// has none (OCI allows that), what its fields say it is: a Docker schema 1
// manifest for schemaVersion 1, an OCI index when it has a manifests list,
// a Docker schema 2 manifest when its config is a Docker config, else an
// OCI image manifest when it has a config. Bytes that are not a JSON
// manifest or index are an error.
func Sniff(raw []byte) (types.MediaType, error) {
	var m struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     types.MediaType `json:"mediaType"`
		Config        *struct {
			MediaType types.MediaType `json:"mediaType"`
		} `json:"config"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", fmt.Errorf("not a JSON manifest: %w", err)
	}
	switch {
	case m.MediaType != "":
		return m.MediaType, nil
	case m.SchemaVersion == 1:
		return types.DockerManifestSchema1, nil
	case m.Manifests != nil:
		return types.OCIImageIndex, nil
	case m.Config != nil && m.Config.MediaType == types.DockerConfigJSON:
		return types.DockerManifestSchema2, nil
	case m.Config != nil:
		return types.OCIManifestSchema1, nil
	}
	return "", errors.New("neither an image manifest nor an index (no mediaType, config or manifests)")
}

// Referrer is what the referrers API (OCI distribution-spec 1.1) lists of
// a manifest, and the subject that manifest refers to.
type Referrer struct {
	// Subject is the digest of the manifest's subject; "" when it has
	// none.
	Subject string
	// MediaType is the manifest's: an OCI image manifest or index.
	MediaType types.MediaType
	// ArtifactType is the manifest's artifactType or, when an image
	// manifest has none, its config's media type.
	ArtifactType string
	// Annotations are the manifest's.
	Annotations map[string]string
}

// ParseReferrer reads the subject of an OCI image manifest or index and
// what the referrers API lists of it. mediaType is the one it was pushed
// or stored with; when that is not an OCI type the body's own mediaType
// decides. Other manifests (Docker schema 2) cannot have a subject: ok is
// false, as it is for bytes that are not JSON.
func ParseReferrer(mediaType types.MediaType, raw []byte) (r Referrer, ok bool) {
	// An index has no config; otherwise the two share these fields.
	var m struct {
		MediaType    types.MediaType `json:"mediaType"`
		ArtifactType string          `json:"artifactType"`
		Config       struct {
			MediaType string `json:"mediaType"`
		} `json:"config"`
		Subject *struct {
			Digest string `json:"digest"`
		} `json:"subject"`
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return Referrer{}, false
	}
	if mediaType != types.OCIManifestSchema1 && mediaType != types.OCIImageIndex {
		mediaType = m.MediaType
	}
	r = Referrer{MediaType: mediaType, ArtifactType: m.ArtifactType, Annotations: m.Annotations}
	switch mediaType {
	case types.OCIManifestSchema1:
		if r.ArtifactType == "" {
			r.ArtifactType = m.Config.MediaType
		}
	case types.OCIImageIndex:
	default:
		return Referrer{}, false
	}
	if m.Subject != nil {
		r.Subject = m.Subject.Digest
	}
	return r, true
}
