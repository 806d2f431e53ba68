// Editing manifests, indexes and configs field by field, shared by
// Rebase, Append and IndexCreate: fields a change does not name are kept
// as they were written.

package imagemod

import (
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/mediatype"
	"github.com/ferry-dev/ferry/transfer"
)

// object is a JSON object kept field by field, so that a change touches
// only the fields it means to.
type object map[string]json.RawMessage

func parseObject(raw []byte) (object, error) {
	var o object
	if err := json.Unmarshal(raw, &o); err != nil {
		return nil, err
	}
	if o == nil {
		o = object{}
	}
	return o, nil
}

// set stores v (marshalled) under k; a nil or empty v deletes k.
func (o object) set(k string, v any) error {
	if v == nil {
		delete(o, k)
		return nil
	}
	b, err := encode(v)
	if err != nil {
		return fmt.Errorf("%s: %w", k, err)
	}
	switch string(b) {
	case "null", `""`, "[]", "{}":
		delete(o, k)
		return nil
	}
	o[k] = b
	return nil
}

// encode marshals compactly without HTML escaping, so URLs keep '&'.
func encode(v any) ([]byte, error) { return transfer.EncodeJSON(v) }

// withLayers returns the manifest raw with another config and layers,
// every other field kept.
func withLayers(raw []byte, cfg v1.Descriptor, layers []v1.Descriptor) (object, error) {
	m, err := parseObject(raw)
	if err != nil {
		return nil, err
	}
	if err := m.set("config", cfg); err != nil {
		return nil, err
	}
	if m["layers"], err = encode(layers); err != nil {
		return nil, err
	}
	return m, nil
}

// layersIn returns the descriptors a manifest of type manifestType that
// ferry builds (Rebase, Append) lists for layers copied under blobs'
// policy: localized or with rewritten urls as blobs.Descriptor says, then
// named in the manifest's own schema (mediatype.ForSchema), so that a
// manifest never mixes Docker and OCI layer types — a registry checks an
// OCI manifest's layer of a Docker foreign type for a blob it does not
// have. Digests, sizes and urls are kept. A layer type with no
// counterpart in the schema is refused (ErrRefused); what names the
// layers in messages is what.
func layersIn(blobs *transfer.Blobs, layers []v1.Descriptor, manifestType types.MediaType, what string) ([]v1.Descriptor, error) {
	out := make([]v1.Descriptor, 0, len(layers))
	for i, l := range layers {
		d := blobs.Descriptor(l, manifestType)
		mt, err := mediatype.ForSchema(string(d.MediaType), string(manifestType))
		if err != nil {
			return nil, fmt.Errorf("%w: layer %d (%s) of %s: %w", ErrRefused, i, l.Digest, what, err)
		}
		d.MediaType = types.MediaType(mt)
		out = append(out, d)
	}
	return out, nil
}

// setBaseAnnotations records the base in m's annotations; unless always,
// only when m records a base already.
func setBaseAnnotations(m object, name string, dg v1.Hash, always bool) error {
	ann, err := annotations(m)
	if err != nil {
		return err
	}
	if !always && ann[AnnotationBaseName] == "" && ann[AnnotationBaseDigest] == "" {
		return nil
	}
	return mergeAnnotations(m, map[string]string{AnnotationBaseName: name, AnnotationBaseDigest: dg.String()})
}

func annotations(m object) (map[string]string, error) {
	ann := map[string]string{}
	if raw, ok := m["annotations"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &ann); err != nil {
			return nil, fmt.Errorf("annotations: %w", err)
		}
	}
	return ann, nil
}

// mergeAnnotations sets m's annotations kv, deleting those whose value is
// empty.
func mergeAnnotations(m object, kv map[string]string) error {
	ann, err := annotations(m)
	if err != nil {
		return err
	}
	for k, v := range kv {
		if v == "" {
			delete(ann, k)
		} else {
			ann[k] = v
		}
	}
	return m.set("annotations", ann)
}

// setEntry points an index entry at desc and, when p is set, updates its
// platform's os, architecture, variant, os.version and os.features,
// keeping its other fields.
func setEntry(e object, desc v1.Descriptor, p *v1.Platform) error {
	if err := e.set("digest", desc.Digest); err != nil {
		return err
	}
	if err := e.set("size", desc.Size); err != nil {
		return err
	}
	if err := e.set("mediaType", desc.MediaType); err != nil {
		return err
	}
	if p == nil {
		return nil
	}
	po := object{}
	if raw, ok := e["platform"]; ok {
		var err error
		if po, err = parseObject(raw); err != nil {
			return fmt.Errorf("entry platform: %w", err)
		}
	}
	for _, f := range []struct {
		key string
		v   any
	}{{"os", p.OS}, {"architecture", p.Architecture}, {"variant", p.Variant}, {"os.version", p.OSVersion}, {"os.features", p.OSFeatures}} {
		if err := po.set(f.key, f.v); err != nil {
			return err
		}
	}
	return e.set("platform", po)
}

// rawList extracts a config's history entries as they are written.
func rawList(cfgRaw []byte, out *[]json.RawMessage) error {
	var c struct {
		History []json.RawMessage `json:"history"`
	}
	if err := json.Unmarshal(cfgRaw, &c); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	*out = c.History
	return nil
}

// isAttestation reports whether an index entry is a BuildKit attestation
// manifest rather than a platform image.
func isAttestation(d v1.Descriptor) bool {
	if d.Annotations["vnd.docker.reference.type"] != "" {
		return true
	}
	return d.Platform != nil && d.Platform.OS == "unknown" && d.Platform.Architecture == "unknown"
}
