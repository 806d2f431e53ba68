package foreign

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ferry-dev/ferry/version"
)

// TestUserAgent: every request of the fetcher, a Fetch and a request a
// caller sends through Client (imagemod's foreign layers), carries
// ferry's User-Agent, and WithUserAgent replaces it.
func TestUserAgent(t *testing.T) {
	data := []byte("foreign layer bytes")
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.UserAgent())
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	u := srv.URL + "/layer.tar.gz"

	f := newFetcher(t, WithAllow(allowLoopback))
	mustFetch(t, f, descFor(data, u), data)
	resp, err := f.Client().Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mustFetch(t, newFetcher(t, WithAllow(allowLoopback), WithUserAgent("other/1")), descFor(data, u), data)

	want := []string{version.UserAgent(), version.UserAgent(), "other/1"}
	if len(seen) != len(want) {
		t.Fatalf("requests carried User-Agents %q, want %q", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Errorf("request %d: User-Agent %q, want %q", i, seen[i], want[i])
		}
	}
}
