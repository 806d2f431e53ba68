package registry

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferry-dev/ferry/internal/stall"
	"github.com/ferry-dev/ferry/internal/wait"
	"github.com/ferry-dev/ferry/store"
)

// ErrStalled means a registry request was abandoned because no byte moved
// for the stall timeout (see WithStallTimeout). It is retried like a
// dropped connection.
var ErrStalled = stall.ErrStalled

// check turns an unexpected response into an error that keeps the
// registry's diagnostic codes (*transport.Error) and wraps the store's
// sentinels.
func check(resp *http.Response, ok ...int) error {
	err := transport.CheckError(resp, ok...)
	if err == nil {
		return nil
	}
	err = classify(err)
	if retryable(resp.StatusCode) {
		if d := wait.RetryAfter(resp.Header.Get("Retry-After"), time.Now()); d > 0 {
			return &wait.RetryAfterError{Err: err, After: d}
		}
	}
	return err
}

func classify(err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusNotFound:
			return fmt.Errorf("%w (%w)", store.ErrNotFound, err)
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%w (%w)", store.ErrUnauthorized, err)
		}
	}
	return err
}
