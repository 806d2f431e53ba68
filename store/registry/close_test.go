package registry

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestCloseCancelsUploadsTogether: the uploads a Repo still holds at
// Close are cancelled together, within one cancelUploadTimeout in all: a
// slow registry gets every DELETE at once, and a silent one (the network
// gone) holds Close for one timeout, not one per upload as the old code
// did, which made an interrupted copy take minutes to exit.
func TestCloseCancelsUploadsTogether(t *testing.T) {
	old := cancelUploadTimeout
	t.Cleanup(func() { cancelUploadTimeout = old })
	for _, c := range []struct {
		name    string
		timeout time.Duration
		answer  time.Duration // 0: never
		within  time.Duration
	}{
		{"slow registry", 3 * time.Second, 100 * time.Millisecond, 1500 * time.Millisecond},
		{"silent registry", 300 * time.Millisecond, 0, 1500 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			cancelUploadTimeout = c.timeout
			var deletes atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodDelete {
					w.WriteHeader(http.StatusOK)
					return
				}
				deletes.Add(1)
				wait := make(<-chan time.Time)
				if c.answer > 0 {
					wait = time.After(c.answer)
				}
				select {
				case <-wait:
					w.WriteHeader(http.StatusNoContent)
				case <-r.Context().Done():
				}
			}))
			defer srv.Close()
			ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/app:a")
			if err != nil {
				t.Fatal(err)
			}
			repo, err := Open(context.Background(), ref, WithPush(), WithInsecure(true), WithAuth(authn.Anonymous))
			if err != nil {
				t.Fatal(err)
			}
			const uploads = 20
			repo.pending = map[v1.Hash]string{}
			for i := range uploads {
				h := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%064x", i)}
				repo.pending[h] = fmt.Sprintf("%s/v2/app/blobs/uploads/%d", srv.URL, i)
			}
			start := time.Now()
			if err := repo.Close(); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took > c.within {
				t.Errorf("Close took %v cancelling %d uploads, want under %v", took, uploads, c.within)
			}
			if n := deletes.Load(); c.answer > 0 && n != uploads || n == 0 {
				t.Errorf("%d DELETEs reached the registry", n)
			}
		})
	}
}
