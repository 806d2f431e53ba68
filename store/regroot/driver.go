package regroot

import (
	"context"
	"errors"
	"fmt"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// OpenDriver opens the registry storage root a storage driver holds (an
// S3 bucket through ferry's S3 driver, internal/s3driver, built from a
// registry's configuration); name describes it in messages ("s3 bucket registry").
// No lock is taken: internal/rootlock guards only local directories, and
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
	r, err := newRoot(ctx, name, d, o)
	if err != nil {
		return nil, err
	}
	r.remote = true
	return r, nil
}

// lacksData reports whether the root has no blobs yet, in which case
// there is no garbage to collect.
func (r *Root) lacksData(ctx context.Context) (bool, error) {
	_, err := r.driver.Stat(ctx, "/"+DataDir+"/blobs")
	var pnf storagedriver.PathNotFoundError
	if errors.As(err, &pnf) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("gc %s: %w", r.dir, err)
	}
	return false, nil
}
