// Package mediatype holds the facts about OCI and Docker media types that
// every store, the copy engine and the fetcher share: which layer types are
// foreign (non-distributable) and their ordinary counterparts, which
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
