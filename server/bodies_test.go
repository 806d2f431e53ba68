package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestUploadsThroughEveryDriver pushes through both storage drivers the
// tests use, in one PATCH and in several: the large-step body path is
// only taken where the driver's writer counts buffered bytes, and a blob
// uploaded in chunks across requests still hashes to its digest.
func TestUploadsThroughEveryDriver(t *testing.T) {
	for _, c := range []struct {
		name string
		opt  Option
	}{{"filesystem", WithRoot(t.TempDir())}, {"inmemory", WithInMemory()}} {
		t.Run(c.name, func(t *testing.T) {
			h, err := NewHandler(context.Background(), c.opt)
			if err != nil {
				t.Fatal(err)
			}
			s := httptest.NewServer(h)
			defer s.Close()
			img, err := random.Image(3<<20, 2)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := name.ParseReference(strings.TrimPrefix(s.URL, "http://") + "/a/b:v1")
			if err != nil {
				t.Fatal(err)
			}
			if err := remote.Write(ref, img); err != nil {
				t.Fatalf("push: %v", err)
			}

			// Three PATCHes of uneven sizes, then PUT with the digest.
			blob := make([]byte, 5<<20+123)
			rand.Read(blob)
			resp, err := http.Post(s.URL+"/v2/a/c/blobs/uploads/", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc := resp.Header.Get("Location")
			for _, part := range [][2]int{{0, 1 << 20}, {1 << 20, 4<<20 + 7}, {4<<20 + 7, len(blob)}} {
				req, _ := http.NewRequest(http.MethodPatch, abs(s.URL, loc), bytes.NewReader(blob[part[0]:part[1]]))
				req.Header.Set("Content-Type", "application/octet-stream")
				req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", part[0], part[1]-1))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					t.Fatalf("PATCH %v: %s", part, resp.Status)
				}
				loc = resp.Header.Get("Location")
			}
			sum := sha256.Sum256(blob)
			digest := fmt.Sprintf("sha256:%x", sum)
			sep := "?"
			if strings.Contains(loc, "?") {
				sep = "&"
			}
			req, _ := http.NewRequest(http.MethodPut, abs(s.URL, loc)+sep+"digest="+digest, nil)
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("PUT %s after three PATCHes: %s", digest, resp.Status)
			}
			resp, err = http.Get(s.URL + "/v2/a/c/blobs/" + digest)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			got.ReadFrom(resp.Body)
			resp.Body.Close()
			if !bytes.Equal(got.Bytes(), blob) {
				t.Errorf("read back %d bytes, not the %d uploaded", got.Len(), len(blob))
			}
		})
	}
}

func abs(base, loc string) string {
	if strings.HasPrefix(loc, "/") {
		return base + loc
	}
	return loc
}

func TestLargeWritesSafe(t *testing.T) {
	for driver, want := range map[string]bool{"filesystem": true, "s3": true, "inmemory": false, "azure": false} {
		if got := largeWritesSafe(driver); got != want {
			t.Errorf("%s: %v, want %v", driver, got, want)
		}
	}
}
