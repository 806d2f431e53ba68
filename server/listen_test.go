package server_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-dev/ferry/server"
)

// htpasswdFile writes an htpasswd file with user:pw at bcrypt cost.
func htpasswdFile(t *testing.T, user, pw string, cost int) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(file, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestPlainAuthRefusedOffLoopback: --htpasswd without TLS is refused on an
// address other machines reach, unless TLS ends at a proxy in front
// (issue 18 item 2).
func TestPlainAuthRefusedOffLoopback(t *testing.T) {
	ctx := context.Background()
	pw := htpasswdFile(t, "u", "p", bcrypt.MinCost)
	certFile, keyFile := selfSigned(t, t.TempDir())
	for _, c := range []struct {
		addr      string
		tls       bool
		proxy     bool
		wantError bool
	}{
		{"0.0.0.0:0", false, false, true},
		{":0", false, false, true},
		{"[::]:0", false, false, true},
		{"127.0.0.1:0", false, false, false},
		{"localhost:0", false, false, false},
		{"0.0.0.0:0", false, true, false},
		{"0.0.0.0:0", true, false, false},
	} {
		cert, key := "", ""
		if c.tls {
			cert, key = certFile, keyFile
		}
		s, err := server.StartTLS(ctx, c.addr, cert, key, server.WithHTPasswd(pw), server.WithTLSTerminatedByProxy(c.proxy))
		if c.wantError {
			if !errors.Is(err, server.ErrPlainAuth) || !strings.Contains(err.Error(), "--tls-terminated-by-proxy") {
				t.Errorf("%s without TLS: %v, want ErrPlainAuth naming --tls-terminated-by-proxy", c.addr, err)
			}
			if s != nil {
				_ = s.Close()
			}
			continue
		}
		if err != nil {
			t.Errorf("%s (tls %v, proxy %v): %v", c.addr, c.tls, c.proxy, err)
			continue
		}
		_ = s.Close()
	}
	// Without authentication every address is allowed.
	s, err := server.Start(ctx, "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
}

// TestUnspecifiedAddressURLs: a server on 0.0.0.0 gives a URL that works
// (loopback), not http://0.0.0.0:PORT or http://[::]:PORT, and lists the
// others.
func TestUnspecifiedAddressURLs(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "[::]:0"} {
		s, err := server.Start(context.Background(), addr)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(s.URL, "http://127.0.0.1:") || s.URLs[0] != s.URL || strings.Contains(strings.Join(s.URLs, " "), "0.0.0.0") || strings.Contains(strings.Join(s.URLs, " "), "[::]") {
			t.Errorf("%s: URL %s, URLs %v; want loopback first and no unspecified address", addr, s.URL, s.URLs)
		}
		if s.Host() != strings.TrimPrefix(s.URL, "http://") {
			t.Errorf("Host() = %s, URL %s", s.Host(), s.URL)
		}
		for _, u := range s.URLs {
			resp, err := http.Get(u + "/v2/")
			if err != nil {
				t.Errorf("%s: %v", u, err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s/v2/: %s", u, resp.Status)
			}
		}
		_ = s.Close()
	}
}
