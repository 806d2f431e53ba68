package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strings"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/manifest/schema2"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-dev/ferry/internal/regstorage/urlrules"
)

// urlPolicy is distribution's check of the URLs of foreign layers in a
// pushed manifest (validation.manifests.urls), made before distribution
// makes it. distribution refuses such a manifest with 500 UNKNOWN, because
// its "invalid URL on layer" error comes first in its list; clients take a
// 500 for a server failure and retry it. ferry answers 400 MANIFEST_INVALID
// instead, naming the layer, the URL and the rule it breaks. The rules are
// distribution's own (registry/storage and registry/handlers, v3.1.2, as
// internal/regstorage/urlrules applies them), so that nothing it would accept is
// refused here.
type urlPolicy struct {
	enabled bool
	rules   *urlrules.Rules
}

// newURLPolicy reads the policy from cfg. Call it before distribution's
// NewApp, which rewrites the configured expressions in place.
func newURLPolicy(cfg *configuration.Configuration) (*urlPolicy, error) {
	v := cfg.Validation
	p := &urlPolicy{enabled: v.Enabled || !v.Disabled}
	if !p.enabled {
		return p, nil
	}
	var err error
	if p.rules, err = urlrules.FromConfig(v.Manifests.URLs.Allow, v.Manifests.URLs.Deny); err != nil {
		if pe, ok := errors.AsType[*urlrules.PatternError](err); ok {
			return nil, fmt.Errorf("server: validation.manifests.urls.%s: %w", pe.List, pe.Err)
		}
		return nil, fmt.Errorf("server: validation.manifests.urls: %w", err)
	}
	return p, nil
}

// ociURLLayers are the OCI layer types whose URLs distribution checks.
var ociURLLayers = map[string]bool{
	ocispec.MediaTypeImageLayer:                     true,
	ocispec.MediaTypeImageLayerGzip:                 true,
	ocispec.MediaTypeImageLayerNonDistributable:     true, //nolint:staticcheck // Windows images use it
	ocispec.MediaTypeImageLayerNonDistributableGzip: true, //nolint:staticcheck // Windows images use it
}

// contentMediaType is a request's Content-Type as distribution reads it
// (UnmarshalManifest): the media type, parameters aside; "" when absent.
func contentMediaType(contentType string) (string, error) {
	if contentType == "" {
		return "", nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return mt, err
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
	// One distribution cannot parse makes it refuse the push itself.
	mt, err := contentMediaType(contentType)
	if err != nil {
		return nil
	}
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
	r, ok := errors.AsType[*urlrules.Refusal](p.rules.Check(u))
	if !ok {
		return ""
	}
	switch r.Reason {
	case urlrules.Unparsable:
		return "does not parse"
	case urlrules.BadScheme:
		return "is neither http nor https"
	case urlrules.Fragment:
		return "has a fragment"
	case urlrules.NoneAllowed:
		return "is refused: this registry allows no foreign URLs (" + howToSet("allow") + ")"
	case urlrules.NotAllowed:
		return fmt.Sprintf("is not allowed by this registry (allowed: %s; %s)", strings.Join(r.Patterns, ", "), howToSet("allow"))
	case urlrules.Denied:
		return fmt.Sprintf("is denied by this registry (denied: %s; %s)", strings.Join(r.Patterns, ", "), howToSet("deny"))
	}
	return r.Error()
}

// howToSet names where a registry's operator sets the list ("allow" or
// "deny"): ferry serve's flag, or the configuration file's field.
func howToSet(list string) string {
	return fmt.Sprintf("ferry serve --foreign-urls-%s, or validation.manifests.urls.%s in its --config file", list, list)
}
