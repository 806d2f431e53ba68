package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	storagemiddleware "github.com/distribution/distribution/v3/registry/storage/driver/middleware"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/server"
)

// failingReads is a storage middleware that fails reads of one blob's
// link in a repository (failingLink) failingLeft more times, as a disk
// or a network filesystem that cannot read a file does.
const failingReadsMiddleware = "ferry-test-failing-reads"

var (
	registerFailingReads sync.Once
	failingLink          atomic.Value // string: a driver path suffix
	failingLeft          atomic.Int64
)

type failingReads struct{ storagedriver.StorageDriver }

// GetContent implements storagedriver.StorageDriver.
func (d failingReads) GetContent(ctx context.Context, p string) ([]byte, error) {
	if suffix, _ := failingLink.Load().(string); suffix != "" && strings.HasSuffix(p, suffix) && failingLeft.Add(-1) >= 0 {
		return nil, fmt.Errorf("read %s: %w", p, errors.New("input/output error"))
	}
	return d.StorageDriver.GetContent(ctx, p)
}

// startFailingReadsMirror starts a mirror of e's registry on a root
// whose driver has the failingReads middleware.
func startFailingReadsMirror(t *testing.T, e *fixture.Env) *server.Server {
	t.Helper()
	registerFailingReads.Do(func() {
		err := storagemiddleware.Register(failingReadsMiddleware, func(_ context.Context, d storagedriver.StorageDriver, _ map[string]any) (storagedriver.StorageDriver, error) {
			return failingReads{d}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	yml := fmt.Sprintf("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nmiddleware:\n  storage:\n    - name: %s\n", filepath.Join(dir, "data"), failingReadsMiddleware)
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := server.Start(context.Background(), "127.0.0.1:0", server.WithConfigFile(cfg),
		server.WithProxy(server.Upstream{URL: e.Reg.URL}), server.WithProxyForeignAllow(allowLoopback))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestMirrorCacheReadFailure: a cached blob the storage fails to read
// (once, or on every try) is still served, fetched again from the
// upstream, where the mirror answered 404 blaming the upstream; a HEAD,
// which no download answers, gets 404 BLOB_UNKNOWN, never a 500.
func TestMirrorCacheReadFailure(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	m := startFailingReadsMirror(t, e)
	t.Cleanup(func() { failingLink.Store(""); failingLeft.Store(0) })
	pullAll(t, m.URL, fixture.Repo, e)
	cfg := e.Configs[0]
	failingLink.Store("/_layers/sha256/" + cfg.Hex + "/link")
	for _, fails := range []int64{1, 1000} {
		failingLeft.Store(fails)
		before := e.Reg.Count("GET", "/blobs/"+cfg.String())
		wantBlob(t, m.URL, fixture.Repo, cfg)
		if failingLeft.Load() >= fails {
			t.Fatalf("%d failing reads: the cache was not read", fails)
		}
		if fails > 1 && e.Reg.Count("GET", "/blobs/"+cfg.String()) == before {
			t.Errorf("a blob the cache cannot read was not fetched from the upstream")
		}
	}
	code, b, _ := get(t, http.MethodHead, m.URL, "/v2/"+fixture.Repo+"/blobs/"+cfg.String())
	if code != http.StatusNotFound {
		t.Errorf("HEAD of a blob the cache cannot read: %d %s, want 404", code, b)
	}
	failingLeft.Store(0)
	wantBlob(t, m.URL, fixture.Repo, cfg)
}
