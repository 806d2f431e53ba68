package registry

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferry-dev/ferry/blob"
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

// classify marks a registry's error with the sentinels it means:
// store.ErrNotFound, store.ErrUnauthorized, blob.ErrDigestMismatch for
// DIGEST_INVALID.
func classify(err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusNotFound:
			return fmt.Errorf("%w (%w)", store.ErrNotFound, err)
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%w (%w)", store.ErrUnauthorized, err)
		}
		if hasCode(te, transport.DigestInvalidErrorCode) {
			// The registry hashed what it was sent and found another
			// digest than the one it was told.
			return fmt.Errorf("%w (%w)", blob.ErrDigestMismatch, err)
		}
	}
	return err
}

// refusedForContent reports whether a registry refused a manifest for
// what it references: distribution answers MANIFEST_BLOB_UNKNOWN or
// MANIFEST_INVALID (400) for blobs it lacks, and a 500 for foreign URLs its
// validation rejects.
func refusedForContent(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	return te.StatusCode >= 500 || hasCode(te, transport.ManifestInvalidErrorCode, "MANIFEST_BLOB_UNKNOWN", transport.BlobUnknownErrorCode)
}

// hasCode reports whether the registry's error carries one of codes among
// its diagnostics.
func hasCode(te *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range te.Errors {
		if slices.Contains(codes, d.Code) {
			return true
		}
	}
	return false
}

// manifestRefused is a registry's refusal of a manifest for what it
// references. It reads as the registry's error and matches both
// store.ErrManifestRefused and, with errors.As, the *transport.Error.
type manifestRefused struct{ err error }

func (e *manifestRefused) Error() string   { return e.err.Error() }
func (e *manifestRefused) Unwrap() []error { return []error{store.ErrManifestRefused, e.err} }

// classifyPut marks a manifest PUT's failure with store.ErrManifestRefused
// when the registry refused the manifest for what it references.
func classifyPut(err error) error {
	if refusedForContent(err) {
		return &manifestRefused{err}
	}
	return err
}
