package foreign

import "github.com/ferry-dev/ferry/mediatype"

// Foreign layer media types, kept for one release for callers not yet
// moved to package mediatype.
const (
	// Deprecated: use mediatype.DockerForeign.
	DockerForeign = mediatype.DockerForeign
	// Deprecated: use mediatype.OCINondist.
	OCINondist = mediatype.OCINondist
	// Deprecated: use mediatype.OCINondistGzip.
	OCINondistGzip = mediatype.OCINondistGzip
	// Deprecated: use mediatype.OCINondistZstd.
	OCINondistZstd = mediatype.OCINondistZstd
)
