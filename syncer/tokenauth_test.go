package syncer_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/auth/token"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/server"
)

// tokenServer is a docker token service for a registry using
// distribution's token authentication: it grants anyone exactly the
// scopes asked for, one per scope parameter as the token specification
// has clients send them, and records what was asked.
type tokenServer struct {
	*httptest.Server
	key    *ecdsa.PrivateKey
	cert   []byte // DER, self-signed: the registry's root bundle
	mu     sync.Mutex
	scopes []string
}

const (
	tokenIssuer  = "ferry-test-issuer"
	tokenService = "ferry-test-registry"
)

func newTokenServer(t *testing.T) *tokenServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: tokenIssuer},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ts := &tokenServer{key: key, cert: cert}
	ts.Server = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	claims := token.ClaimSet{Issuer: tokenIssuer, Audience: []string{r.URL.Query().Get("service")},
		NotBefore: time.Now().Add(-time.Minute).Unix(), IssuedAt: time.Now().Unix(), Expiration: time.Now().Add(time.Hour).Unix()}
	for _, s := range r.URL.Query()["scope"] {
		ts.mu.Lock()
		ts.scopes = append(ts.scopes, s)
		ts.mu.Unlock()
		// repository:NAME:ACTIONS, NAME without colons (no port here).
		parts := strings.Split(s, ":")
		if len(parts) != 3 {
			continue // not one scope: granted nothing
		}
		claims.Access = append(claims.Access, &token.ResourceActions{Type: parts[0], Name: parts[1], Actions: strings.Split(parts[2], ",")})
	}
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("x5c", []string{base64.StdEncoding.EncodeToString(ts.cert)})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: ts.key}, opts)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"token": raw})
}

// asked returns the scopes asked for so far.
func (ts *tokenServer) asked() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return slices.Clone(ts.scopes)
}

// newTokenRegistry starts the embedded registry (distribution) with token
// authentication against ts, in memory. The realm names the token server
// as localhost: go-containerregistry refuses realms at private addresses
// other than the registry's own.
func newTokenRegistry(t *testing.T, ts *tokenServer) *fixture.Registry {
	t.Helper()
	dir := t.TempDir()
	bundle := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.cert}), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`version: 0.1
storage:
  inmemory: {}
auth:
  token:
    realm: %s/token
    service: %s
    issuer: %s
    rootcertbundle: %s
    signingalgorithms: [ES256]
`, strings.Replace(ts.URL, "127.0.0.1", "localhost", 1), tokenService, tokenIssuer, bundle)
	path := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return fixture.NewRegistry(t, server.WithConfigFile(path))
}

// TestSyncMountsAcrossRepositoriesWithTokenAuth checks that a destination
// with token authentication lets the run mount a shared blob into a second
// repository: the mount needs a token with pull access to the repository
// it mounts from, which ferry asks for, so the blob is neither read back
// from the destination nor fetched from the source again.
func TestSyncMountsAcrossRepositoriesWithTokenAuth(t *testing.T) {
	w := newWorld(t)
	ts := newTokenServer(t)
	w.dst = newTokenRegistry(t, ts)
	cfg := w.config(t, "  images:\n    windows/servercore: [ltsc2019]\n    app/api: ['1']\n")
	rep, err := w.run(t, cfg, w.dst.Host+"/mirror")
	if err != nil {
		for _, img := range rep.Images {
			t.Logf("%s: %s %s", img.Source, img.Status, img.Error)
		}
		t.Fatalf("sync: %v", err)
	}
	mounted := 0
	for _, img := range rep.Images {
		if img.Status != "copied" {
			t.Fatalf("%s: %s %s", img.Source, img.Status, img.Error)
		}
		mounted += img.Copy.BlobsMounted
	}
	_, ordinary := fixture.Layers(t, w.base)
	if mounted < len(ordinary) {
		t.Errorf("%d blobs mounted, want the %d shared layers (scopes asked: %q)", mounted, len(ordinary), ts.asked())
	}
	for _, l := range ordinary {
		if n := w.src.Count("GET", "/blobs/"+l.Digest.String()); n != 1 {
			t.Errorf("shared layer %s fetched %d times from the source, want 1", l.Digest, n)
		}
		if n := w.dst.Count("GET", "/blobs/"+l.Digest.String()); n != 0 {
			t.Errorf("shared layer %s read back from the destination %d times: the mount was refused", l.Digest, n)
		}
	}
	var fromPull bool
	for _, s := range ts.asked() {
		fromPull = fromPull || s == "repository:mirror/windows/servercore:pull" || s == "repository:mirror/app/api:pull"
	}
	if !fromPull {
		t.Errorf("no token asked for pull on the repository mounted from: %q", ts.asked())
	}
}
