package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestUpstreamClientBuildOutlivesACancelledCaller: a blob download
// (under the server's context) that joins a client build a late client's
// request started is not failed when that request goes away: it builds
// the client again.
func TestUpstreamClientBuildOutlivesACancelledCaller(t *testing.T) {
	pinged := make(chan struct{}, 4)
	var slow atomic.Bool
	slow.Store(true)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			pinged <- struct{}{}
			if slow.Load() {
				<-r.Context().Done() // answers only once the caller has gone
				return
			}
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer up.Close()
	u := &upstream{Upstream: Upstream{URL: up.URL, Username: "u", Password: "p"}}

	reqCtx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, _, err := u.client(reqCtx, "repo"); first <- err }()
	<-pinged // the request's build is under way
	second := make(chan error, 1)
	go func() { _, _, err := u.client(context.Background(), "repo"); second <- err }()
	time.Sleep(50 * time.Millisecond) // the download joins the build
	slow.Store(false)
	cancel()
	if err := <-first; err == nil {
		t.Error("the cancelled request's client call succeeded")
	}
	select {
	case err := <-second:
		if err != nil {
			t.Errorf("the download's client call failed with the cancelled request's error: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the download's client call did not return")
	}
}
