package imagemod

import (
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.yaml.in/yaml/v3"
)

// Spec is manifest-tool's push-from-spec YAML: the index's reference,
// extra tags, index annotations and the images with their platforms.
type Spec struct {
	Image       string
	Tags        []string
	Annotations map[string]string
	Manifests   []SpecEntry
}

// SpecEntry is one image of a Spec. Platform holds the fields the spec
// gives; nil when it gives none.
type SpecEntry struct {
	Image    string
	Platform *v1.Platform
}

// ParseSpec reads a spec as manifest-tool does — keys image, tags,
// annotations, manifests[].image and manifests[].platform with os,
// architecture, variant, osversion and osfeatures — and also accepts the
// OCI spellings os.version and os.features, which manifest-tool drops.
// Unknown keys are reported in warnings, not refused, as manifest-tool
// ignores them; giving a field twice with different values is an error.
func ParseSpec(data []byte) (*Spec, []string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("spec: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil, nil, fmt.Errorf("spec: empty")
	}
	p := &specParser{}
	s, err := p.spec(doc.Content[0])
	if err != nil {
		return nil, nil, fmt.Errorf("spec: %w", err)
	}
	if s.Image == "" {
		return nil, p.warnings, fmt.Errorf("spec: no image: the index's reference is missing")
	}
	if len(s.Manifests) == 0 {
		return nil, p.warnings, fmt.Errorf("spec: no manifests")
	}
	for i, m := range s.Manifests {
		if m.Image == "" {
			return nil, p.warnings, fmt.Errorf("spec: manifests[%d] has no image", i)
		}
	}
	return s, p.warnings, nil
}

type specParser struct {
	warnings []string
}

// fields walks a mapping node, calling fn for each key it knows and
// warning about the others.
func (p *specParser) fields(n *yaml.Node, where string, fn func(key string, v *yaml.Node) (bool, error)) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("%s: line %d: want a mapping", where, n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		known, err := fn(k.Value, v)
		if err != nil {
			return fmt.Errorf("%s.%s: line %d: %w", where, k.Value, v.Line, err)
		}
		if !known {
			p.warnings = append(p.warnings, fmt.Sprintf("spec line %d: unknown key %s.%s ignored", k.Line, where, k.Value))
		}
	}
	return nil
}

func (p *specParser) spec(n *yaml.Node) (*Spec, error) {
	s := &Spec{}
	err := p.fields(n, "spec", func(k string, v *yaml.Node) (bool, error) {
		switch k {
		case "image":
			return true, v.Decode(&s.Image)
		case "tags":
			return true, v.Decode(&s.Tags)
		case "annotations":
			return true, v.Decode(&s.Annotations)
		case "manifests":
			if v.Kind != yaml.SequenceNode {
				return true, fmt.Errorf("want a list")
			}
			for i, e := range v.Content {
				m, err := p.entry(e, fmt.Sprintf("manifests[%d]", i))
				if err != nil {
					return true, err
				}
				s.Manifests = append(s.Manifests, m)
			}
			return true, nil
		}
		return false, nil
	})
	return s, err
}

func (p *specParser) entry(n *yaml.Node, where string) (SpecEntry, error) {
	var e SpecEntry
	err := p.fields(n, where, func(k string, v *yaml.Node) (bool, error) {
		switch k {
		case "image":
			return true, v.Decode(&e.Image)
		case "platform":
			pl, err := p.platform(v, where+".platform")
			e.Platform = pl
			return true, err
		}
		return false, nil
	})
	return e, err
}

func (p *specParser) platform(n *yaml.Node, where string) (*v1.Platform, error) {
	pl := &v1.Platform{}
	once := func(dst *string, v *yaml.Node) error {
		var s string
		if err := v.Decode(&s); err != nil {
			return err
		}
		if *dst != "" && *dst != s {
			return fmt.Errorf("given twice: %q and %q", *dst, s)
		}
		*dst = s
		return nil
	}
	var features []string
	err := p.fields(n, where, func(k string, v *yaml.Node) (bool, error) {
		switch k {
		case "os":
			return true, once(&pl.OS, v)
		case "architecture":
			return true, once(&pl.Architecture, v)
		case "variant":
			return true, once(&pl.Variant, v)
		case "osversion", "os.version":
			return true, once(&pl.OSVersion, v)
		case "osfeatures", "os.features":
			var f []string
			if err := v.Decode(&f); err != nil {
				return true, err
			}
			if features != nil && strings.Join(features, ",") != strings.Join(f, ",") {
				return true, fmt.Errorf("given twice: %v and %v", features, f)
			}
			features = f
			return true, nil
		}
		return false, nil
	})
	pl.OSFeatures = features
	if pl.OS == "" && pl.Architecture == "" && pl.Variant == "" && pl.OSVersion == "" && len(pl.OSFeatures) == 0 {
		return nil, err
	}
	return pl, err
}
