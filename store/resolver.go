package store

import "context"

// Resolver opens references written as a user writes them — a registry
// reference, or a location with a transport prefix such as oci: or
// oci-archive: — for libraries that meet references in their input
// (annotations, specs, bundles) and must not choose a backend themselves.
// The opener package implements it.
type Resolver interface {
	// Source opens ref for reading. The resolver closes what it opened
	// when it is itself closed.
	Source(ctx context.Context, ref string) (Source, error)
	// Target opens ref for writing. from, when not nil, is the source
	// being copied, so that blobs may be mounted from it. The caller
	// closes the target.
	Target(ctx context.Context, ref string, from Source) (Target, error)
}
