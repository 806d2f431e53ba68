package server_test

import (
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-dev/ferry/server"
)

// loginTime returns the median time of five GET /v2/ with user:pass.
func loginTime(t *testing.T, url, user, pass string) time.Duration {
	t.Helper()
	var times []time.Duration
	for i := 0; i < 5; i++ {
		req, _ := http.NewRequest(http.MethodGet, url+"/v2/", nil)
		req.SetBasicAuth(user, pass)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		times = append(times, time.Since(start))
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s with a wrong password: %s", user, resp.Status)
		}
	}
	slices.Sort(times)
	return times[len(times)/2]
}

// TestUnknownUserTakesAsLong: a wrong password takes as long for a user
// the file does not have as for one it has, so user names cannot be found
// by timing (issue 18 item 4).
func TestUnknownUserTakesAsLong(t *testing.T) {
	pw := htpasswdFile(t, "admin", "right", 9)
	r := newReg(t, server.WithHTPasswd(pw), server.WithLoginLimit(1000, time.Millisecond))
	known := loginTime(t, r.url, "admin", "wrong")
	unknown := loginTime(t, r.url, "nobody", "wrong")
	if unknown < known/2 {
		t.Errorf("a wrong password takes %v for a known user and %v for an unknown one: user names show by timing", known, unknown)
	}
}

// TestFailedLoginsLimited: after its allowance of failed logins a client
// gets 429 with Retry-After, even with the right password, until the
// allowance comes back; requests without credentials and other clients
// (behind a TLS-terminating proxy, by X-Forwarded-For) are not held.
func TestFailedLoginsLimited(t *testing.T) {
	pw := htpasswdFile(t, "admin", "right", bcrypt.MinCost)
	r := newReg(t, server.WithHTPasswd(pw), server.WithLoginLimit(3, time.Minute), server.WithTLSTerminatedByProxy(true))
	get := func(user, pass, xff string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, r.url+"/v2/", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i := 0; i < 3; i++ {
		if resp := get("admin", "guess"+strconv.Itoa(i), "203.0.113.7"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failed login %d: %s, want 401", i+1, resp.Status)
		}
	}
	resp := get("admin", "right", "203.0.113.7")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after 3 failed logins: %s, want 429", resp.Status)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
		t.Errorf("Retry-After %q, want 1 to 60 seconds", resp.Header.Get("Retry-After"))
	}
	if resp := get("", "", "203.0.113.7"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without credentials: %s, want the 401 challenge", resp.Status)
	}
	if resp := get("admin", "right", "198.51.100.1"); resp.StatusCode != http.StatusOK {
		t.Errorf("another client with the right password: %s, want 200", resp.Status)
	}
}
