package regroot

import (
	"context"
	"fmt"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// OpenDriver opens the registry storage root a storage driver holds (an
// S3 bucket through ferry's S3 driver, internal/regstorage/s3driver, built from a
// registry's configuration); name describes it in messages ("s3 bucket registry").
// No lock is taken: internal/regstorage/rootlock guards only local directories, and
// a caller collecting garbage in shared storage must itself make sure no
// registry writes to it.
func OpenDriver(ctx context.Context, name string, d storagedriver.StorageDriver, opts ...Option) (*Root, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	if o.holder != "" {
		return nil, fmt.Errorf("storage root %s: a lock is only taken on a local directory", name)
	}
	return newRoot(ctx, name, d, o)
}
