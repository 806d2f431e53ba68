package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/regstorage/rootlock"
	"github.com/ferry-dev/ferry/server"
	"github.com/ferry-dev/ferry/store/regroot"
)

// selfSigned writes a certificate for 127.0.0.1 and its key under dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestStartTLSBadKeyPair: a certificate that is missing or not a
// certificate makes StartTLS fail, naming the file, before it locks the
// root; a good one serves https.
func TestStartTLSBadKeyPair(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for _, c := range []struct{ cert, key, want string }{
		{missing, keyFile, missing},
		{garbage, keyFile, garbage},
		{certFile, garbage, garbage},
	} {
		root := filepath.Join(t.TempDir(), "data")
		s, err := server.StartTLS(context.Background(), "127.0.0.1:0", c.cert, c.key, server.WithRoot(root))
		if err == nil {
			_ = s.Close()
			t.Errorf("StartTLS(%s, %s) started", c.cert, c.key)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("StartTLS(%s, %s): %v, want it to name %s", c.cert, c.key, err, c.want)
		}
		if err := rootlock.Held(root); err != nil {
			t.Errorf("root left locked after a failed start: %v", err)
		}
		if _, err := os.Stat(root); !os.IsNotExist(err) {
			t.Errorf("a failed start touched the root: %v", err)
		}
	}

	root := filepath.Join(t.TempDir(), "data")
	s, err := server.StartTLS(context.Background(), "127.0.0.1:0", certFile, keyFile, server.WithRoot(root))
	if err != nil {
		t.Fatalf("StartTLS with a good key pair: %v", err)
	}
	if !strings.HasPrefix(s.URL, "https://") {
		t.Errorf("URL %s", s.URL)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a test's self-signed certificate
	resp, err := client.Get(s.URL + "/v2/")
	if err != nil {
		t.Fatalf("GET /v2/ over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v2/ over TLS: %s", resp.Status)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Wait(); err != nil {
		t.Errorf("Wait: %v", err)
	}
	if err := rootlock.Held(root); err != nil {
		t.Errorf("root still locked after Close: %v", err)
	}
}

// TestStartRefusesNotRoot: a root that holds other things is refused with
// ferry serve's words and the one ErrNotRoot, the error store/regroot
// gives for the same directory.
func TestStartRefusesNotRoot(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := server.Start(context.Background(), "127.0.0.1:0", server.WithRoot(root))
	if err == nil {
		_ = s.Close()
		t.Fatal("Start served a directory that holds other things")
	}
	if !errors.Is(err, server.ErrNotRoot) || !errors.Is(err, regroot.ErrNotRoot) {
		t.Errorf("Start: %v, want it to wrap ErrNotRoot", err)
	}
	want := "server: root " + root + ": neither empty nor a registry storage root (it holds notes.txt but no docker/registry/v2); point --root at an empty or new directory, or at a registry root"
	if err.Error() != want {
		t.Errorf("Start: %q\nwant %q", err, want)
	}
}

// TestForeignURLsWithConfigFile: foreign URL lists given as options
// replace a configuration file's, list by list; the default allow list
// does not.
func TestForeignURLsWithConfigFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yml")
	yml := "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: " + filepath.Join(dir, "data") + "\n" +
		"validation:\n  manifests:\n    urls:\n      allow: ['^https://cdn\\.example/']\n      deny: ['evil']\n"
	if err := os.WriteFile(file, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	fileAllow, fileDeny := []string{`^https://cdn\.example/`}, []string{"evil"}
	for _, c := range []struct {
		name                string
		opts                []server.Option
		wantAllow, wantDeny []string
	}{
		{"file alone", []server.Option{server.WithConfigFile(file)}, fileAllow, fileDeny},
		{"allow given", []server.Option{server.WithConfigFile(file), server.WithForeignURLs([]string{`^http://`}, nil)}, []string{`^http://`}, fileDeny},
		{"deny given", []server.Option{server.WithForeignURLs(nil, []string{"bad"}), server.WithConfigFile(file)}, fileAllow, []string{"bad"}},
		{"both given", []server.Option{server.WithConfigFile(file), server.WithForeignURLs([]string{"a"}, []string{"b"})}, []string{"a"}, []string{"b"}},
		{"no file", []server.Option{server.WithInMemory(), server.WithForeignURLs(nil, []string{"bad"})}, []string{server.DefaultForeignURLsAllow}, []string{"bad"}},
	} {
		cfg, err := server.Configuration(c.opts...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if u := cfg.Validation.Manifests.URLs; !slices.Equal(u.Allow, c.wantAllow) || !slices.Equal(u.Deny, c.wantDeny) {
			t.Errorf("%s: allow %q deny %q, want %q %q", c.name, u.Allow, u.Deny, c.wantAllow, c.wantDeny)
		}
	}
}

// The lists given to WithForeignURLs are the caller's: distribution's
// NewApp rewrites its configuration's lists in place.
func TestForeignURLsListsAreCopied(t *testing.T) {
	allow, deny := []string{`^https://`}, []string{`evil`}
	if _, err := server.NewHandler(context.Background(), server.WithInMemory(), server.WithForeignURLs(allow, deny)); err != nil {
		t.Fatal(err)
	}
	if allow[0] != `^https://` || deny[0] != `evil` {
		t.Errorf("caller's lists rewritten: allow %q deny %q", allow, deny)
	}
	// An empty list given is a list given: no default in its place.
	cfg, err := server.Configuration(server.WithInMemory(), server.WithForeignURLs([]string{}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if u := cfg.Validation.Manifests.URLs; u.Allow == nil || len(u.Allow) != 0 || u.Deny != nil {
		t.Errorf("allow %#v deny %#v, want an empty allow list and no deny list", u.Allow, u.Deny)
	}
}
