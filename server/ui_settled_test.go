package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// TestUIStaticDoesNotWaitForMirrorStores: while a mirror's background
// store is under way, the web view's stylesheet is served at once, and
// a page listing the registry's contents waits for the store to end.
func TestUIStaticDoesNotWaitForMirrorStores(t *testing.T) {
	ctx := context.Background()
	m := &mirror{background: &sync.WaitGroup{}}
	unblock := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(unblock) }) }
	defer m.background.Wait()
	defer release()
	m.storeLater(ctx, tagKey("repo", "latest"), "tag repo:latest", func(context.Context) error { <-unblock; return nil })

	ns, err := storage.NewRegistry(ctx, inmemory.New())
	if err != nil {
		t.Fatal(err)
	}
	u, err := newWebUI(http.NotFoundHandler(), &ociLayer{ns: ns}, m)
	if err != nil {
		t.Fatal(err)
	}
	serve := func(path string) <-chan *httptest.ResponseRecorder {
		done := make(chan *httptest.ResponseRecorder, 1)
		go func() {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.Header.Set("Accept", "application/json")
			w := httptest.NewRecorder()
			u.ServeHTTP(w, req)
			done <- w
		}()
		return done
	}

	page := serve("/ui/")
	select {
	case w := <-serve("/ui/static/style.css"):
		if w.Code != http.StatusOK || w.Body.Len() == 0 {
			t.Errorf("GET /ui/static/style.css = %d, %d bytes", w.Code, w.Body.Len())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stylesheet waited for the mirror's background store")
	}
	select {
	case w := <-page:
		t.Fatalf("the repositories page answered %d while a store was under way", w.Code)
	case <-time.After(100 * time.Millisecond):
	}
	release()
	select {
	case w := <-page:
		if w.Code != http.StatusOK {
			t.Errorf("GET /ui/ = %d %s", w.Code, w.Body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the repositories page did not answer once the store ended")
	}
}
