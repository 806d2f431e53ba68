// Package platform selects index entries for --platform, the Windows way:
// an os.version prefix matches every update revision of a build, the LTSC
// names are aliases for their builds, and latest-ubr keeps the newest
// update revision.
package platform

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrNoMatch means a spec selected no entry.
var ErrNoMatch = errors.New("no platform matches")

// Aliases maps Windows release names to their build's os.version prefix.
var Aliases = map[string]string{
	"ltsc2019": "10.0.17763",
	"1809":     "10.0.17763",
	"ltsc2022": "10.0.20348",
	"ltsc2025": "10.0.26100",
}

// Spec is one --platform value.
type Spec struct {
	OS, Architecture, Variant string
	// OSVersion is a prefix of os.version, matched field by field.
	OSVersion string
	// LatestUBR keeps only the matches with the highest update revision.
	LatestUBR bool
	// All matches every entry.
	All bool
}

// ParseSpec parses os/arch[/variant][:os.version|alias][:latest-ubr], or
// "all". A bare alias ("ltsc2022") means windows/amd64 on that build.
func ParseSpec(s string) (Spec, error) {
	bad := fmt.Errorf("invalid platform %q: want os/arch[/variant][:os.version][:latest-ubr], ltsc2019, ltsc2022, ltsc2025 or all", s)
	if s == "all" {
		return Spec{All: true}, nil
	}
	fields := strings.Split(s, ":")
	head := fields[0]
	if v, ok := Aliases[strings.ToLower(head)]; ok {
		fields = append([]string{"windows/amd64", v}, fields[1:]...)
		head = fields[0]
	}
	parts := strings.Split(head, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return Spec{}, bad
	}
	sp := Spec{OS: strings.ToLower(parts[0]), Architecture: normArch(strings.ToLower(parts[1]))}
	if len(parts) == 3 {
		if parts[2] == "" {
			return Spec{}, bad
		}
		sp.Variant = strings.ToLower(parts[2])
	}
	rest := fields[1:]
	if n := len(rest); n > 0 && strings.EqualFold(rest[n-1], "latest-ubr") {
		sp.LatestUBR = true
		rest = rest[:n-1]
	}
	switch len(rest) {
	case 0:
	case 1:
		v := rest[0]
		if a, ok := Aliases[strings.ToLower(v)]; ok {
			v = a
		}
		for _, f := range strings.Split(v, ".") {
			if _, err := strconv.ParseUint(f, 10, 32); err != nil {
				return Spec{}, bad
			}
		}
		sp.OSVersion = v
	default:
		return Spec{}, bad
	}
	return sp, nil
}

func normArch(a string) string {
	switch a {
	case "x86_64", "x86-64":
		return "amd64"
	case "aarch64":
		return "arm64"
	}
	return a
}

// String returns the spec in ParseSpec's syntax.
func (s Spec) String() string {
	if s.All {
		return "all"
	}
	out := s.OS + "/" + s.Architecture
	if s.Variant != "" {
		out += "/" + s.Variant
	}
	if s.OSVersion != "" {
		out += ":" + s.OSVersion
	}
	if s.LatestUBR {
		out += ":latest-ubr"
	}
	return out
}

// Matches reports whether p satisfies the spec (ignoring LatestUBR).
func (s Spec) Matches(p v1.Platform) bool {
	if s.All {
		return true
	}
	if !strings.EqualFold(p.OS, s.OS) || normArch(strings.ToLower(p.Architecture)) != s.Architecture {
		return false
	}
	if s.Variant != "" {
		v := strings.ToLower(p.Variant)
		if !(v == s.Variant || (s.Architecture == "arm64" && (v == "" && s.Variant == "v8"))) {
			return false
		}
	}
	if s.OSVersion != "" {
		return p.OSVersion == s.OSVersion || strings.HasPrefix(p.OSVersion, s.OSVersion+".")
	}
	return true
}

// Select returns the indexes of the entries any spec selects, in order.
func Select(descs []v1.Descriptor, specs []Spec) ([]int, error) {
	chosen := map[int]bool{}
	for _, s := range specs {
		var hits []int
		for i, d := range descs {
			if s.All || (d.Platform != nil && s.Matches(*d.Platform)) {
				hits = append(hits, i)
			}
		}
		if len(hits) == 0 {
			return nil, fmt.Errorf("%w %q; the index has %s", ErrNoMatch, s, available(descs))
		}
		if s.LatestUBR {
			best := ""
			for _, i := range hits {
				if v := descs[i].Platform.OSVersion; best == "" || CompareOSVersion(v, best) > 0 {
					best = v
				}
			}
			var top []int
			for _, i := range hits {
				if descs[i].Platform.OSVersion == best {
					top = append(top, i)
				}
			}
			hits = top
		}
		for _, i := range hits {
			chosen[i] = true
		}
	}
	var out []int
	for i := range descs {
		if chosen[i] {
			out = append(out, i)
		}
	}
	return out, nil
}

func available(descs []v1.Descriptor) string {
	var names []string
	for _, d := range descs {
		names = append(names, Format(d.Platform))
	}
	if len(names) == 0 {
		return "no entries"
	}
	return strings.Join(names, ", ")
}

// Format renders a platform as os/arch[/variant][:os.version].
func Format(p *v1.Platform) string {
	if p == nil {
		return "unknown"
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	if p.OSVersion != "" {
		s += ":" + p.OSVersion
	}
	return s
}

// CompareOSVersion compares dotted versions numerically, field by field.
func CompareOSVersion(a, b string) int {
	af, bf := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(af), len(bf)); i++ {
		var x, y uint64
		if i < len(af) {
			x, _ = strconv.ParseUint(af[i], 10, 64)
		}
		if i < len(bf) {
			y, _ = strconv.ParseUint(bf[i], 10, 64)
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
