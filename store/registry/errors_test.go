package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/store"
)

// A registry's refusal of a manifest for what it references (blobs it
// lacks, URLs its validation rejects) wraps store.ErrManifestRefused, so
// that the copy engine can explain it without reading wire codes; the
// registry's error stays inspectable and its message unchanged. Other
// failures do not.
func TestManifestRefusedClassified(t *testing.T) {
	for _, c := range []struct {
		status  int
		code    string
		refused bool
		also    error
	}{
		{http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN", true, nil},
		{http.StatusBadRequest, "MANIFEST_INVALID", true, nil},
		{http.StatusBadRequest, "BLOB_UNKNOWN", true, nil},
		{http.StatusInternalServerError, "UNKNOWN", true, nil},
		{http.StatusBadRequest, "TAG_INVALID", false, nil},
		{http.StatusNotFound, "NAME_UNKNOWN", false, store.ErrNotFound},
		{http.StatusForbidden, "DENIED", false, store.ErrUnauthorized},
		{http.StatusBadRequest, "DIGEST_INVALID", false, blob.ErrDigestMismatch},
	} {
		t.Run(fmt.Sprintf("%d %s", c.status, c.code), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPut {
					return // the /v2/ ping
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(c.status)
				fmt.Fprintf(w, `{"errors":[{"code":%q,"message":"no"}]}`, c.code)
			}))
			defer srv.Close()
			ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/app:v1")
			if err != nil {
				t.Fatal(err)
			}
			repo, err := Open(context.Background(), ref, WithPush(), WithRetries(1))
			if err != nil {
				t.Fatal(err)
			}
			raw := []byte(`{"schemaVersion":2}`)
			err = repo.PushManifest(context.Background(), blob.DescriptorOf(raw, types.OCIManifestSchema1), raw)
			if got := errors.Is(err, store.ErrManifestRefused); got != c.refused {
				t.Errorf("errors.Is(%v, ErrManifestRefused) = %v, want %v", err, got, c.refused)
			}
			var te *transport.Error
			if !errors.As(err, &te) || te.StatusCode != c.status {
				t.Errorf("%v: no *transport.Error with status %d", err, c.status)
			}
			if c.also != nil && !errors.Is(err, c.also) {
				t.Errorf("%v does not wrap %v", err, c.also)
			}
			if strings.Contains(err.Error(), store.ErrManifestRefused.Error()) || !strings.Contains(err.Error(), c.code) {
				t.Errorf("message %q: want the registry's own", err)
			}
		})
	}
}
