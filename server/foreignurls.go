package server

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/manifest/schema2"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// urlPolicy is distribution's check of the URLs of foreign layers in a
// pushed manifest (validation.manifests.urls), made before distribution
// makes it. distribution refuses such a manifest with 500 UNKNOWN, because
// its "invalid URL on layer" error comes first in its list; clients take a
// 500 for a server failure and retry it. ferry answers 400 MANIFEST_INVALID
// instead, naming the layer, the URL and the rule it breaks. The rules are
// distribution's own (registry/storage, v3.1.2), so that nothing it would
// accept is refused here.
type urlPolicy struct {
	enabled     bool
	allow, deny *regexp.Regexp // nil: no such rule
	allowSrc    []string       // as configured, for messages
	denySrc     []string
}

// newURLPolicy reads the policy from cfg. Call it before distribution's
// NewApp, which rewrites the configured expressions in place.
func newURLPolicy(cfg *configuration.Configuration) (*urlPolicy, error) {
	v := cfg.Validation
	p := &urlPolicy{
		enabled:  v.Enabled || !v.Disabled,
		allowSrc: append([]string(nil), v.Manifests.URLs.Allow...),
		denySrc:  append([]string(nil), v.Manifests.URLs.Deny...),
	}
	if !p.enabled {
		return p, nil
	}
	if len(p.allowSrc) == 0 && len(p.denySrc) == 0 {
		// distribution's rule: with neither list, no URL is allowed.
		p.allow = regexp.MustCompile("^$")
		return p, nil
	}
	var err error
	if p.allow, err = joinExprs(p.allowSrc); err != nil {
		return nil, fmt.Errorf("server: validation.manifests.urls.allow: %w", err)
	}
	if p.deny, err = joinExprs(p.denySrc); err != nil {
		return nil, fmt.Errorf("server: validation.manifests.urls.deny: %w", err)
	}
	return p, nil
}

// joinExprs compiles exprs as one alternation, as distribution does; nil
// for none.
func joinExprs(exprs []string) (*regexp.Regexp, error) {
	if len(exprs) == 0 {
		return nil, nil
	}
	parts := make([]string, len(exprs))
	for i, e := range exprs {
		if _, err := regexp.Compile(e); err != nil {
			return nil, err
		}
		parts[i] = "(?:" + e + ")"
	}
	return regexp.Compile(strings.Join(parts, "|"))
}

// ociURLLayers are the OCI layer types whose URLs distribution checks.
var ociURLLayers = map[string]bool{
	ocispec.MediaTypeImageLayer:                     true,
	ocispec.MediaTypeImageLayerGzip:                 true,
	ocispec.MediaTypeImageLayerNonDistributable:     true, //nolint:staticcheck // Windows images use it
	ocispec.MediaTypeImageLayerNonDistributableGzip: true, //nolint:staticcheck // Windows images use it
}

// check returns why distribution would refuse the foreign URLs of the
// manifest payload pushed with contentType, or nil. Payloads it cannot
// read are left to distribution.
func (p *urlPolicy) check(contentType string, payload []byte) error {
	var m struct {
		MediaType string               `json:"mediaType"`
		Layers    []ocispec.Descriptor `json:"layers"`
	}
	if json.Unmarshal(payload, &m) != nil {
		return nil
	}
	mt := contentType
	if mt != ocispec.MediaTypeImageManifest && mt != schema2.MediaTypeManifest {
		mt = m.MediaType
	}
	for _, l := range m.Layers {
		switch {
		case mt == ocispec.MediaTypeImageManifest && ociURLLayers[l.MediaType]:
		case mt == schema2.MediaTypeManifest && l.MediaType == schema2.MediaTypeForeignLayer:
			if len(l.URLs) == 0 {
				return fmt.Errorf("foreign layer %s has no urls", l.Digest)
			}
		default:
			continue
		}
		for _, u := range l.URLs {
			if why := p.refuses(u); why != "" {
				return fmt.Errorf("layer %s: URL %s %s", l.Digest, u, why)
			}
		}
	}
	return nil
}

// refuses says why one URL is refused, or "".
func (p *urlPolicy) refuses(u string) string {
	pu, err := url.Parse(u)
	switch {
	case err != nil:
		return "does not parse"
	case pu.Scheme != "http" && pu.Scheme != "https":
		return "is neither http nor https"
	case pu.Fragment != "":
		return "has a fragment"
	case p.allow != nil && !p.allow.MatchString(u):
		if len(p.allowSrc) == 0 {
			return "is refused: this registry allows no foreign URLs (" + howToSet("allow") + ")"
		}
		return fmt.Sprintf("is not allowed by this registry (allowed: %s; %s)", strings.Join(p.allowSrc, ", "), howToSet("allow"))
	case p.deny != nil && p.deny.MatchString(u):
		return fmt.Sprintf("is denied by this registry (denied: %s; %s)", strings.Join(p.denySrc, ", "), howToSet("deny"))
	}
	return ""
}

// howToSet names where a registry's operator sets the list ("allow" or
// "deny"): ferry serve's flag, or the configuration file's field.
func howToSet(list string) string {
	return fmt.Sprintf("ferry serve --foreign-urls-%s, or validation.manifests.urls.%s in its --config file", list, list)
}
