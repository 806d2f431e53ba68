package opener

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/ferry-dev/ferry/store/registry"
)

// Access is how to reach one registry beyond the Network: what a sync
// file says per registry (skopeo's credentials, tls-verify, cert-dir).
type Access struct {
	// Username and Password, when Username is set, are used instead of
	// the docker credential store.
	Username, Password string
	// Insecure allows plain HTTP to the registry (tls-verify: false).
	Insecure bool
	// CertDir holds *.crt files (certificate authorities trusted besides
	// the system's) and *.cert/*.key pairs (client certificates), as
	// skopeo and docker read a certs.d directory.
	CertDir string
}

// WithAccess returns an opener like o whose registry stores reach their
// registry as a says. It shares nothing to close with o.
func (o *Opener) WithAccess(a Access) (*Opener, error) {
	n := &Opener{net: o.net, extra: append([]registry.Option(nil), o.extra...), clients: &registry.Clients{}}
	n.net.Insecure = n.net.Insecure || a.Insecure
	if a.Username != "" {
		n.extra = append(n.extra, registry.WithAuth(authn.FromConfig(authn.AuthConfig{Username: a.Username, Password: a.Password})))
	}
	if a.CertDir != "" {
		t, err := certTransport(a.CertDir)
		if err != nil {
			return nil, err
		}
		n.extra = append(n.extra, registry.WithTransport(t))
	}
	return n, nil
}

// registryOptions are the registry client's options: the network's and
// the access's.
func (o *Opener) registryOptions() []registry.Option {
	opts := append(o.net.RegistryOptions(), o.extra...)
	if o.clients != nil {
		opts = append(opts, registry.WithClients(o.clients))
	}
	return opts
}

// certTransport is the registry transport trusting the authorities in
// dir as well as the system's and presenting its client certificates.
func certTransport(dir string) (http.RoundTripper, error) {
	base, ok := registry.DefaultTransport.(*http.Transport)
	if !ok {
		return nil, errors.New("cert-dir: the registry transport cannot take certificates")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cert-dir: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		switch {
		case strings.HasSuffix(e.Name(), ".crt"):
			pem, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("cert-dir: %w", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("cert-dir: %s holds no PEM certificate", p)
			}
		case strings.HasSuffix(e.Name(), ".cert"):
			key := strings.TrimSuffix(p, ".cert") + ".key"
			pair, err := tls.LoadX509KeyPair(p, key)
			if err != nil {
				return nil, fmt.Errorf("cert-dir: client certificate %s with key %s: %w", p, key, err)
			}
			cfg.Certificates = append(cfg.Certificates, pair)
		}
	}
	t := base.Clone()
	t.TLSClientConfig = cfg
	return t, nil
}
