package transfer

import (
	"bytes"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/foreign"
	"github.com/ferry-dev/ferry/mediatype"
)

// marshal encodes v compactly without HTML escaping, so URLs keep their
// '&' as written.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// decodeGeneric decodes JSON keeping every field and exact numbers, so that
// a rewrite changes only what it means to.
func decodeGeneric(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// rewriteLayers applies fn to every layer descriptor of an image manifest
// and returns the new bytes, or raw unchanged when fn changed nothing.
func rewriteLayers(raw []byte, fn func(layer map[string]any) bool) ([]byte, bool, error) {
	m, err := decodeGeneric(raw)
	if err != nil {
		return nil, false, err
	}
	layers, _ := m["layers"].([]any)
	changed := false
	for _, l := range layers {
		if lm, ok := l.(map[string]any); ok && fn(lm) {
			changed = true
		}
	}
	if !changed {
		return raw, false, nil
	}
	out, err := marshal(m)
	return out, true, err
}

// localizeIn returns a layer rewriter for a manifest of type
// manifestType that turns each foreign layer descriptor into its
// distributable counterpart in the manifest's own schema
// (mediatype.Localized): new media type, no urls.
func localizeIn(manifestType string) func(layer map[string]any) bool {
	return func(layer map[string]any) bool {
		mt, _ := layer["mediaType"].(string)
		to, ok := mediatype.Localized(mt, manifestType)
		if !ok {
			return false
		}
		layer["mediaType"] = to
		delete(layer, "urls")
		return true
	}
}

// localizeManifest turns the foreign layers of raw, a manifest of type
// manifestType, into ordinary ones (localizeIn) and, when it had any,
// names every other layer in the manifest's schema too
// (mediatype.ForSchema), so that the new manifest mixes no Docker and OCI
// layer types. A manifest without foreign layers comes back unchanged.
func localizeManifest(raw []byte, manifestType string) ([]byte, bool, error) {
	out, changed, err := rewriteLayers(raw, localizeIn(manifestType))
	if err != nil || !changed {
		return out, changed, err
	}
	out, _, err = rewriteLayers(out, func(layer map[string]any) bool {
		mt, _ := layer["mediaType"].(string)
		to, err := mediatype.ForSchema(mt, manifestType)
		if err != nil || to == mt {
			return false // a type the schema lacks stays as written
		}
		layer["mediaType"] = to
		return true
	})
	return out, true, err
}

// rewriteURLs returns a layer rewriter applying prefix rules to foreign
// layers' urls.
func rewriteURLs(rules []foreign.Rewrite) func(map[string]any) bool {
	return func(layer map[string]any) bool {
		mt, _ := layer["mediaType"].(string)
		if !mediatype.IsForeign(mt) {
			return false
		}
		list, _ := layer["urls"].([]any)
		var urls []string
		for _, u := range list {
			if s, ok := u.(string); ok {
				urls = append(urls, s)
			}
		}
		out := foreign.RewriteURLs(urls, rules)
		changed := false
		nl := make([]any, len(out))
		for i := range out {
			nl[i] = out[i]
			if i >= len(urls) || out[i] != urls[i] {
				changed = true
			}
		}
		if changed {
			layer["urls"] = nl
		}
		return changed
	}
}

// rewriteIndex points index entries at new manifest digests (old -> new
// descriptor) and keeps only the entries in keep (nil: all).
func rewriteIndex(raw []byte, repl map[v1.Hash]v1.Descriptor, keep map[v1.Hash]bool) ([]byte, bool, error) {
	m, err := decodeGeneric(raw)
	if err != nil {
		return nil, false, err
	}
	list, _ := m["manifests"].([]any)
	changed := false
	var out []any
	for _, e := range list {
		em, ok := e.(map[string]any)
		if !ok {
			return nil, false, fmt.Errorf("index entry is not an object")
		}
		ds, _ := em["digest"].(string)
		d, err := v1.NewHash(ds)
		if err != nil {
			return nil, false, fmt.Errorf("index entry digest %q: %w", ds, err)
		}
		if keep != nil && !keep[d] {
			changed = true
			continue
		}
		if nd, ok := repl[d]; ok && nd.Digest != d {
			em["digest"] = nd.Digest.String()
			em["size"] = nd.Size
			changed = true
		}
		out = append(out, em)
	}
	if !changed {
		return raw, false, nil
	}
	if out == nil {
		out = []any{}
	}
	m["manifests"] = out
	b, err := marshal(m)
	return b, true, err
}
