package pingcache

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// registry answers /v2/ with status (and a Basic challenge on 401),
// holding each ping until release is closed, and counts the pings.
type registry struct {
	status  atomic.Int32
	pings   atomic.Int32
	others  atomic.Int32
	release chan struct{}
}

func newRegistry(t *testing.T, status int) (*registry, *httptest.Server) {
	reg := &registry{release: make(chan struct{})}
	close(reg.release)
	reg.status.Store(int32(status))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/" || r.Header.Get("Authorization") != "" {
			reg.others.Add(1)
			return
		}
		reg.pings.Add(1)
		<-reg.release
		w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
		if s := int(reg.status.Load()); s == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		}
		w.WriteHeader(int(reg.status.Load()))
		_, _ = w.Write([]byte("{}"))
	}))
	t.Cleanup(srv.Close)
	return reg, srv
}

func ping(t *testing.T, c *http.Client, url string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url+"/v2/", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestAnswersFromTheLastAnswerWithinTTL(t *testing.T) {
	reg, srv := newRegistry(t, http.StatusOK)
	now := time.Unix(1e9, 0)
	pc := &Cache{TTL: time.Minute, now: func() time.Time { return now }}
	c := &http.Client{Transport: pc.Transport(nil)}
	for range 5 {
		if resp := ping(t, c, srv.URL); resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Distribution-Api-Version") != "registry/2.0" {
			t.Fatalf("ping: %s %v", resp.Status, resp.Header)
		}
	}
	if n := reg.pings.Load(); n != 1 {
		t.Fatalf("5 pings within the TTL reached the registry %d times, want 1", n)
	}
	// Not a ping: an authorized /v2/, another path, a query.
	ping(t, c, srv.URL, "Authorization", "Basic eDp5")
	if _, err := c.Get(srv.URL + "/v2/r/tags/list"); err != nil {
		t.Fatal(err)
	}
	if reg.others.Load() != 2 || reg.pings.Load() != 1 {
		t.Fatalf("other requests: %d reached the registry, want 2 (pings %d)", reg.others.Load(), reg.pings.Load())
	}
	now = now.Add(time.Minute)
	ping(t, c, srv.URL)
	if n := reg.pings.Load(); n != 2 {
		t.Fatalf("a ping once the TTL passed was answered from the cache (%d pings)", n)
	}
}

func TestChallengesAreKeptOnlyWhenAsked(t *testing.T) {
	for _, keep := range []bool{false, true} {
		reg, srv := newRegistry(t, http.StatusUnauthorized)
		c := &http.Client{Transport: (&Cache{TTL: time.Minute, Challenges: keep}).Transport(nil)}
		for range 3 {
			resp := ping(t, c, srv.URL)
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Basic realm="test"` {
				t.Fatalf("keep=%v: ping: %s, challenge %q", keep, resp.Status, resp.Header.Get("WWW-Authenticate"))
			}
		}
		want := int32(3)
		if keep {
			want = 1
		}
		if n := reg.pings.Load(); n != want {
			t.Errorf("Challenges=%v: 3 pings reached the registry %d times, want %d", keep, n, want)
		}
	}
}

func TestFailuresAreNotKept(t *testing.T) {
	reg, srv := newRegistry(t, http.StatusServiceUnavailable)
	c := &http.Client{Transport: (&Cache{TTL: time.Minute, Challenges: true}).Transport(nil)}
	ping(t, c, srv.URL)
	reg.status.Store(http.StatusOK)
	if resp := ping(t, c, srv.URL); resp.StatusCode != http.StatusOK {
		t.Fatalf("after a 503, the next ping got %s", resp.Status)
	}
	// A 200 kept, then an answer that may not be kept drops it.
	reg.status.Store(http.StatusServiceUnavailable)
	pc := &Cache{TTL: time.Minute}
	pc.answers = map[string]answer{"k": {at: time.Now(), status: http.StatusOK}}
	if _, err := pc.ping(http.DefaultTransport, mustRequest(t, srv.URL), "k"); err != nil {
		t.Fatal(err)
	}
	if _, ok := pc.kept("k"); ok {
		t.Fatal("a 503 was kept")
	}
	if n := reg.pings.Load(); n != 3 {
		t.Fatalf("pings %d, want 3", n)
	}
}

func TestConcurrentPingsMakeOneRequest(t *testing.T) {
	reg, srv := newRegistry(t, http.StatusOK)
	reg.release = make(chan struct{})
	c := &http.Client{Transport: (&Cache{TTL: time.Minute}).Transport(nil)}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp := ping(t, c, srv.URL); resp.StatusCode != http.StatusOK {
				t.Errorf("ping: %s", resp.Status)
			}
		}()
	}
	for reg.pings.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the others join the flight
	close(reg.release)
	wg.Wait()
	if n := reg.pings.Load(); n != 1 {
		t.Fatalf("8 concurrent pings reached the registry %d times, want 1", n)
	}
}

func TestACancelledPingDoesNotFailTheOthers(t *testing.T) {
	reg, srv := newRegistry(t, http.StatusOK)
	reg.release = make(chan struct{})
	c := &http.Client{Transport: (&Cache{TTL: time.Minute}).Transport(nil)}
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v2/", nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		first <- err
	}()
	for reg.pings.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	second := make(chan *http.Response, 1)
	go func() { second <- ping(t, c, srv.URL) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-first; err == nil {
		t.Fatal("the cancelled ping succeeded")
	}
	close(reg.release)
	if resp := <-second; resp.StatusCode != http.StatusOK {
		t.Fatalf("the ping sharing a cancelled one: %s", resp.Status)
	}
}

func mustRequest(t *testing.T, url string) *http.Request {
	req, err := http.NewRequest(http.MethodGet, url+"/v2/", nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestTransportsShareTheirCache(t *testing.T) {
	reg, srv := newRegistry(t, http.StatusOK)
	pc := &Cache{TTL: time.Minute}
	other := &http.Transport{}
	defer other.CloseIdleConnections()
	ping(t, &http.Client{Transport: pc.Transport(nil)}, srv.URL)
	ping(t, &http.Client{Transport: pc.Transport(other)}, srv.URL)
	if n := reg.pings.Load(); n != 1 {
		t.Fatalf("two transports of one cache pinged %d times, want 1", n)
	}
}
