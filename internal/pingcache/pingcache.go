// Package pingcache answers a registry's ping (GET /v2/) from the
// registry's last answer.
//
// Clients ask a registry's /v2/ before they talk to it, for its
// authentication challenge: go-containerregistry for every transport it
// builds (one per repository and set of scopes), distribution's proxy
// before every manifest while it holds no challenge (an anonymous
// upstream never gives one). Neither library can be handed the answer of
// an earlier ping, so a sync mounting blobs into many repositories, or a
// mirror pulling many repositories, paid one round trip per transport —
// on a WAN, tens of milliseconds each. A Transport below them answers
// those pings from one (Cache, and the transports it wraps).
package pingcache

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/ferry-dev/ferry/internal/sharedcall"
)

// Cache keeps registries' answers to pings, for the transports it wraps
// (Transport): a ping (an unauthenticated GET of /v2/ with no query) is
// answered from the answer the same scheme and host gave less than TTL
// ago, when that answer was 200, or 401 with a challenge and Challenges
// is set; concurrent pings of one host make one request. Safe for
// concurrent use; TTL must be set.
type Cache struct {
	// TTL is how long an answer is reused.
	TTL time.Duration
	// Challenges also keeps 401 answers that carry a WWW-Authenticate
	// challenge (with their headers); otherwise only 200s are kept.
	Challenges bool

	mu      sync.Mutex
	answers map[string]answer // scheme://host -> its last kept answer
	flight  singleflight.Group
	now     func() time.Time // tests
}

// answer is a ping's answer, kept without its body (which clients ignore).
type answer struct {
	at     time.Time
	status int
	header http.Header
}

// Transport returns a transport that answers pings from c and sends
// every other request, and the pings c does not answer, with next (nil:
// http.DefaultTransport).
func (c *Cache) Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{c: c, next: next}
}

type transport struct {
	c    *Cache
	next http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet || r.URL.Path != "/v2/" || r.URL.RawQuery != "" || r.Header.Get("Authorization") != "" {
		return t.next.RoundTrip(r)
	}
	c := t.c
	key := r.URL.Scheme + "://" + r.URL.Host
	if a, ok := c.kept(key); ok {
		return a.response(r), nil
	}
	a, err := sharedcall.Do(r.Context(), &c.flight, key, func() (answer, error) { return c.ping(t.next, r, key) })
	if err != nil {
		return nil, err
	}
	return a.response(r), nil
}

// ping sends r with next, keeps its answer when it may be kept, and
// returns it.
func (c *Cache) ping(next http.RoundTripper, r *http.Request, key string) (answer, error) {
	resp, err := next.RoundTrip(r)
	if err != nil {
		return answer{}, err
	}
	// A ping's body is a few bytes ("{}"); read a little so that the
	// connection can be reused, and drop it.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	_ = resp.Body.Close()
	a := answer{at: c.clock(), status: resp.StatusCode, header: resp.Header.Clone()}
	keep := a.status == http.StatusOK ||
		c.Challenges && a.status == http.StatusUnauthorized && len(a.header.Values("WWW-Authenticate")) > 0
	c.mu.Lock()
	defer c.mu.Unlock()
	if keep {
		if c.answers == nil {
			c.answers = map[string]answer{}
		}
		c.answers[key] = a
	} else {
		delete(c.answers, key)
	}
	return a, nil
}

// kept returns key's kept answer while it is fresh.
func (c *Cache) kept(key string) (answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.answers[key]
	if !ok || c.clock().Sub(a.at) >= c.TTL {
		return answer{}, false
	}
	return a, true
}

// response is a as the answer to r, with an empty body.
func (a answer) response(r *http.Request) *http.Response {
	h := a.header.Clone()
	h.Del("Content-Length")
	return &http.Response{
		Status:     fmt.Sprintf("%d %s", a.status, http.StatusText(a.status)),
		StatusCode: a.status,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        h,
		Body:          http.NoBody,
		ContentLength: 0,
		Request:       r,
	}
}

func (c *Cache) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}
