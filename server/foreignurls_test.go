package server

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/manifest/schema2"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestURLPolicy(t *testing.T) {
	manifest := func(mt, layerType string, urls ...string) []byte {
		b, _ := json.Marshal(map[string]any{
			"schemaVersion": 2,
			"mediaType":     mt,
			"layers": []map[string]any{{
				"mediaType": layerType,
				"digest":    "sha256:" + strings.Repeat("ab", 32),
				"size":      1,
				"urls":      urls,
			}},
		})
		return b
	}
	const (
		oci     = ocispec.MediaTypeImageManifest
		nd      = ocispec.MediaTypeImageLayerNonDistributableGzip //nolint:staticcheck // Windows images use it
		docker  = schema2.MediaTypeManifest
		foreign = schema2.MediaTypeForeignLayer
	)
	policy := func(allow, deny []string, disabled bool) *urlPolicy {
		var cfg configuration.Configuration
		cfg.Validation.Disabled = disabled
		cfg.Validation.Manifests.URLs.Allow = allow
		cfg.Validation.Manifests.URLs.Deny = deny
		p, err := newURLPolicy(&cfg)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	https := policy([]string{`^https://`}, nil, false)
	denyEvil := policy([]string{`^https://`}, []string{`evil\.example`}, false)
	cases := []struct {
		name    string
		p       *urlPolicy
		payload []byte
		want    string // "" accepted; else a substring of the refusal
	}{
		{"oci https", https, manifest(oci, nd, "https://cdn.example/x"), ""},
		{"oci http", https, manifest(oci, nd, "http://cdn.example/x"), "not allowed by this registry (allowed: ^https://"},
		{"second URL refused", https, manifest(oci, nd, "https://cdn.example/x", "http://cdn.example/y"), "http://cdn.example/y"},
		{"denied", denyEvil, manifest(oci, nd, "https://evil.example/x"), "denied by this registry"},
		{"fragment", https, manifest(oci, nd, "https://cdn.example/x#y"), "has a fragment"},
		{"scheme", policy([]string{`.`}, nil, false), manifest(oci, nd, "ftp://cdn.example/x"), "neither http nor https"},
		{"distributable OCI layer with URLs is checked too", https, manifest(oci, ocispec.MediaTypeImageLayerGzip, "http://cdn.example/x"), "http://cdn.example/x"},
		{"zstd layer is not (distribution stats it instead)", https, manifest(oci, ocispec.MediaTypeImageLayerZstd, "http://cdn.example/x"), ""},
		{"docker foreign http", https, manifest(docker, foreign, "http://cdn.example/x"), "not allowed"},
		{"docker foreign without urls", https, manifest(docker, foreign), "has no urls"},
		{"OCI type in a Docker manifest is not checked", https, manifest(docker, nd, "http://cdn.example/x"), ""},
		{"neither list: nothing allowed", policy(nil, nil, false), manifest(oci, nd, "https://cdn.example/x"), "allows no foreign URLs"},
		{"validation disabled", policy(nil, nil, true), manifest(oci, nd, "http://cdn.example/x"), ""},
		{"not JSON: left to distribution", https, []byte("{"), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.check("", tc.payload)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Errorf("accepted, want a refusal with %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Errorf("refusal %q lacks %q", err, tc.want)
			}
		})
	}
	var bad configuration.Configuration
	bad.Validation.Manifests.URLs.Allow = []string{"("}
	if _, err := newURLPolicy(&bad); err == nil {
		t.Error("an allow expression that does not compile was accepted")
	}
}

// distribution reads a manifest's Content-Type with its parameters
// aside, so the check does too.
func TestURLPolicyContentTypeParameters(t *testing.T) {
	var cfg configuration.Configuration
	cfg.Validation.Manifests.URLs.Allow = []string{`^https://`}
	p, err := newURLPolicy(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	// No mediaType in the body: the Content-Type alone says what it is.
	payload := []byte(`{"schemaVersion":2,"layers":[{"mediaType":"` + ocispec.MediaTypeImageLayerNonDistributableGzip + //nolint:staticcheck // Windows images use it
		`","digest":"sha256:` + strings.Repeat("ab", 32) + `","size":1,"urls":["http://cdn.example/x"]}]}`)
	for _, ct := range []string{
		ocispec.MediaTypeImageManifest,
		ocispec.MediaTypeImageManifest + "; charset=utf-8",
		ocispec.MediaTypeImageManifest + ";charset=UTF-8",
	} {
		if err := p.check(ct, payload); err == nil || !strings.Contains(err.Error(), "not allowed by this registry") {
			t.Errorf("Content-Type %q: %v, want a refusal", ct, err)
		}
	}
	if err := p.check("application/vnd.oci.image.manifest.v1+json; =", payload); err != nil {
		t.Errorf("a Content-Type distribution cannot parse is left to it: %v", err)
	}
}
