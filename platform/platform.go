// Package platform selects index entries for --platform, the Windows way:
// an os.version prefix matches every update revision of a build, the LTSC
// names are aliases for their builds, and latest-ubr keeps the newest
// update revision of each build.
//
// # Syntax
//
//	os/arch[/variant][:OSVERSION][:latest-ubr]
//	ALIAS[:latest-ubr]     (windows/amd64 on that build)
//	all
//
// OSVERSION is a dotted version of one to four decimal fields, or an alias
// (case-insensitive): ltsc2019 and 1809 for 10.0.17763, ltsc2022 for
// 10.0.20348, ltsc2025 for 10.0.26100. With fewer than four fields it is a
// prefix: 10.0.17763 matches 10.0.17763 and 10.0.17763.*; with four (a
// full version, the fourth field being the update build revision, UBR) it
// matches exactly. Fields compare numerically.
//
// OS, architecture and variant are case-insensitive. Architectures are
// normalized as containerd does (x86_64 → amd64, aarch64 → arm64, armhf →
// arm/v7, armel → arm/v6, i386 → 386); an empty variant in a spec matches
// every variant, and arm64's variant v8 also matches an entry without a
// variant.
package platform

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrInvalidSpec means a --platform value does not parse.
	ErrInvalidSpec = errors.New("invalid platform")
	// ErrNoMatch means a spec selected no index entry.
	ErrNoMatch = errors.New("no platform matches")
)

// Aliases maps Windows release names (lower case) to their build's
// os.version prefix.
var Aliases = map[string]string{
	"ltsc2019": "10.0.17763",
	"1809":     "10.0.17763",
	"ltsc2022": "10.0.20348",
	"ltsc2025": "10.0.26100",
}

// latestUBR is the last field that asks for the newest update revision.
const latestUBR = "latest-ubr"

// Spec is one --platform value.
type Spec struct {
	// OS, Architecture and Variant are lower case, the architecture
	// normalized (x86_64 → amd64, aarch64 → arm64).
	OS, Architecture, Variant string
	// OSVersion is a dotted os.version: a prefix with fewer than four
	// fields, an exact version with four. Aliases are resolved.
	OSVersion string
	// LatestUBR keeps, of the entries the spec matches, only those with the
	// highest update revision of their platform and build.
	LatestUBR bool
	// All matches every entry, even one without a platform.
	All bool
}

const want = "want os/arch[/variant][:os.version][:latest-ubr]"

// ParseSpec parses one --platform value; see the package documentation.
// Errors wrap ErrInvalidSpec and read `invalid platform "x": want
// os/arch[/variant][:os.version][:latest-ubr]`, with the reason after.
func ParseSpec(s string) (Spec, error) {
	bad := func(why string) (Spec, error) {
		if why != "" {
			why = " (" + why + ")"
		}
		return Spec{}, fmt.Errorf("%w %q: %s, an alias (ltsc2019, 1809, ltsc2022, ltsc2025) or all%s", ErrInvalidSpec, s, want, why)
	}
	if s == "" {
		return bad("empty")
	}
	if strings.EqualFold(s, "all") {
		return Spec{All: true}, nil
	}
	fields := strings.Split(s, ":")
	head, rest := fields[0], fields[1:]
	var sp Spec
	if v, ok := Aliases[strings.ToLower(head)]; ok {
		sp = Spec{OS: "windows", Architecture: "amd64", OSVersion: v}
	} else {
		parts := strings.Split(head, "/")
		if len(parts) < 2 || len(parts) > 3 {
			return bad("")
		}
		for _, p := range parts {
			if !validName(p) {
				return bad(fmt.Sprintf("%q is not an os, architecture or variant", p))
			}
		}
		variant := ""
		if len(parts) == 3 {
			variant = parts[2]
		}
		sp.OS = strings.ToLower(parts[0])
		sp.Architecture, sp.Variant = normalize(parts[1], variant)
	}
	if n := len(rest); n > 0 && strings.EqualFold(rest[n-1], latestUBR) {
		sp.LatestUBR = true
		rest = rest[:n-1]
	}
	switch {
	case len(rest) == 0:
	case len(rest) > 1:
		for _, f := range rest {
			if strings.EqualFold(f, latestUBR) {
				return bad(latestUBR + " must come last")
			}
		}
		return bad("too many ':' fields")
	case sp.OSVersion != "":
		return bad("an alias already names the os.version")
	default:
		v, err := parseOSVersion(rest[0])
		if err != nil {
			return bad(err.Error())
		}
		sp.OSVersion = v
	}
	return sp, nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// parseOSVersion resolves an alias or checks a dotted version of one to
// four decimal fields.
func parseOSVersion(v string) (string, error) {
	if a, ok := Aliases[strings.ToLower(v)]; ok {
		return a, nil
	}
	fs := strings.Split(v, ".")
	if len(fs) > 4 {
		return "", fmt.Errorf("%q has more than four fields", v)
	}
	for _, f := range fs {
		if _, err := strconv.ParseUint(f, 10, 32); err != nil {
			return "", fmt.Errorf("%q is neither an os.version nor an alias", v)
		}
	}
	return v, nil
}

// normalize lower-cases an architecture and variant and maps the other
// spellings to the OCI ones, as containerd does.
func normalize(arch, variant string) (string, string) {
	arch, variant = strings.ToLower(arch), strings.ToLower(variant)
	switch arch {
	case "x86_64", "x86-64", "amd64":
		return "amd64", variant
	case "i386", "i486", "i586", "i686", "x86", "386":
		return "386", variant
	case "aarch64", "arm64":
		if variant == "8" {
			variant = "v8"
		}
		return "arm64", variant
	case "armhf":
		return "arm", "v7"
	case "armel":
		return "arm", "v6"
	case "arm":
		switch variant {
		case "5", "6", "7", "8":
			variant = "v" + variant
		}
		return "arm", variant
	}
	return arch, variant
}

// String returns the spec in ParseSpec's syntax, aliases resolved.
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
		out += ":" + latestUBR
	}
	return out
}

// Matches reports whether p satisfies the spec; LatestUBR, which depends
// on the other entries, is Select's business.
func (s Spec) Matches(p v1.Platform) bool {
	if s.All {
		return true
	}
	if !strings.EqualFold(p.OS, s.OS) {
		return false
	}
	sa, sv := normalize(s.Architecture, s.Variant)
	pa, pv := normalize(p.Architecture, p.Variant)
	if pa != sa {
		return false
	}
	if sv != "" && sv != pv && !(sa == "arm64" && sv == "v8" && pv == "") {
		return false
	}
	if s.OSVersion == "" {
		return true
	}
	if p.OSVersion == "" {
		return false
	}
	sf, pf := strings.Split(s.OSVersion, "."), strings.Split(p.OSVersion, ".")
	if len(pf) < len(sf) || len(sf) >= 4 && len(pf) != len(sf) {
		return false
	}
	for i := range sf {
		if compareField(sf[i], pf[i]) != 0 {
			return false
		}
	}
	return true
}

// Select returns the indexes into descs, in their original order and
// without duplicates, of the entries any of specs selects. An entry with no
// platform matches only "all". A spec with LatestUBR keeps, of its matches,
// those with the highest update revision of their os/arch/variant and build
// (the first three os.version fields), compared numerically.
//
// When a spec matches nothing, the error wraps ErrNoMatch, names every
// such spec and lists the platforms descs has. No specs select nothing.
func Select(descs []v1.Descriptor, specs []Spec) ([]int, error) {
	chosen := make([]bool, len(descs))
	var missing []string
	for _, s := range specs {
		var hits []int
		for i, d := range descs {
			if s.All || d.Platform != nil && s.Matches(*d.Platform) {
				hits = append(hits, i)
			}
		}
		if len(hits) == 0 {
			missing = append(missing, strconv.Quote(s.String()))
			continue
		}
		if s.LatestUBR && !s.All {
			hits = newestUBR(descs, hits)
		}
		for _, i := range hits {
			chosen[i] = true
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w %s; available: %s", ErrNoMatch, strings.Join(missing, ", "), available(descs))
	}
	var out []int
	for i, c := range chosen {
		if c {
			out = append(out, i)
		}
	}
	return out, nil
}

// newestUBR keeps the hits whose os.version is the highest of their group,
// a group being one os/arch/variant and build.
func newestUBR(descs []v1.Descriptor, hits []int) []int { return NewestUBRs(descs, hits, 1) }

// NewestUBRs keeps, of the entries of descs that hits lists, those whose
// os.version is among the n highest of their group — one os/arch/variant
// and build (the first three os.version fields) — compared numerically,
// in hits' order. Entries without a platform form a group of their own.
func NewestUBRs(descs []v1.Descriptor, hits []int, n int) []int {
	group := func(i int) string {
		if descs[i].Platform == nil {
			return ""
		}
		p := *descs[i].Platform
		fs := strings.Split(p.OSVersion, ".")
		if len(fs) > 3 {
			fs = fs[:3]
		}
		for j, f := range fs {
			fs[j] = canonField(f)
		}
		a, v := normalize(p.Architecture, p.Variant)
		if a == "arm64" && v == "" {
			v = "v8"
		}
		return strings.ToLower(p.OS) + "/" + a + "/" + v + ":" + strings.Join(fs, ".")
	}
	version := func(i int) string {
		if descs[i].Platform == nil {
			return ""
		}
		return descs[i].Platform.OSVersion
	}
	versions := map[string][]string{} // group -> distinct versions, highest first
	for _, i := range hits {
		g, v := group(i), version(i)
		if !slices.ContainsFunc(versions[g], func(w string) bool { return CompareOSVersion(v, w) == 0 }) {
			versions[g] = append(versions[g], v)
		}
	}
	for g, vs := range versions {
		slices.SortFunc(vs, func(a, b string) int { return CompareOSVersion(b, a) })
		versions[g] = vs[:min(n, len(vs))]
	}
	var out []int
	for _, i := range hits {
		v := version(i)
		if slices.ContainsFunc(versions[group(i)], func(w string) bool { return CompareOSVersion(v, w) == 0 }) {
			out = append(out, i)
		}
	}
	return out
}

// available lists the distinct platforms of descs, in order.
func available(descs []v1.Descriptor) string {
	var names []string
	seen := map[string]bool{}
	for _, d := range descs {
		n := "(no platform)"
		if d.Platform != nil {
			n = Format(d.Platform)
		}
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "none (the index is empty)"
	}
	return strings.Join(names, ", ")
}

// Format renders a platform as os/arch[/variant][:os.version], for example
// "windows/amd64:10.0.17763.5830" or "linux/arm64/v8"; nil is "unknown".
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

// CompareOSVersion compares dotted versions field by field, numerically
// (so 10.0.17763.10 > 10.0.17763.9), and returns -1, 0 or +1. A missing
// field counts as 0. A field that is not a decimal number sorts after
// every number, and two such fields compare as strings.
func CompareOSVersion(a, b string) int {
	af, bf := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(af), len(bf)) {
		x, y := "0", "0"
		if i < len(af) {
			x = af[i]
		}
		if i < len(bf) {
			y = bf[i]
		}
		if c := compareField(x, y); c != 0 {
			return c
		}
	}
	return 0
}

// compareField compares one version field: numbers numerically, whatever
// their length, before non-numbers, which compare as strings.
func compareField(x, y string) int {
	x, y = canonField(x), canonField(y)
	xn, yn := isDigits(x), isDigits(y)
	switch {
	case xn && yn:
		if len(x) != len(y) {
			if len(x) < len(y) {
				return -1
			}
			return 1
		}
		return strings.Compare(x, y)
	case xn:
		return -1
	case yn:
		return 1
	}
	return strings.Compare(x, y)
}

// canonField drops a number's leading zeros; "" counts as 0.
func canonField(f string) string {
	if !isDigits(f) {
		if f == "" {
			return "0"
		}
		return f
	}
	f = strings.TrimLeft(f, "0")
	if f == "" {
		return "0"
	}
	return f
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
