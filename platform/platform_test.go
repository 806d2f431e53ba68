package platform

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestParseSpec(t *testing.T) {
	cases := []struct {
		in   string
		want Spec
		str  string // String(); "" means same as in
	}{
		{"windows/amd64", Spec{OS: "windows", Architecture: "amd64"}, ""},
		{"linux/arm64/v8", Spec{OS: "linux", Architecture: "arm64", Variant: "v8"}, ""},
		{"Linux/X86_64", Spec{OS: "linux", Architecture: "amd64"}, "linux/amd64"},
		{"linux/x86-64", Spec{OS: "linux", Architecture: "amd64"}, "linux/amd64"},
		{"linux/aarch64", Spec{OS: "linux", Architecture: "arm64"}, "linux/arm64"},
		{"linux/armhf", Spec{OS: "linux", Architecture: "arm", Variant: "v7"}, "linux/arm/v7"},
		{"linux/arm/7", Spec{OS: "linux", Architecture: "arm", Variant: "v7"}, "linux/arm/v7"},
		{"linux/i386", Spec{OS: "linux", Architecture: "386"}, "linux/386"},
		{"windows/amd64:10.0.17763", Spec{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763"}, ""},
		{"windows/amd64:10.0.17763.5830", Spec{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763.5830"}, ""},
		{"windows/amd64:ltsc2019", Spec{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763"}, "windows/amd64:10.0.17763"},
		{"windows/amd64:1809", Spec{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763"}, "windows/amd64:10.0.17763"},
		{"windows/amd64:LTSC2022", Spec{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348"}, "windows/amd64:10.0.20348"},
		{"windows/arm64:ltsc2025", Spec{OS: "windows", Architecture: "arm64", OSVersion: "10.0.26100"}, "windows/arm64:10.0.26100"},
		{"windows/amd64:ltsc2019:latest-ubr", Spec{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763", LatestUBR: true}, "windows/amd64:10.0.17763:latest-ubr"},
		{"windows/amd64:latest-ubr", Spec{OS: "windows", Architecture: "amd64", LatestUBR: true}, ""},
		{"windows/amd64:Latest-UBR", Spec{OS: "windows", Architecture: "amd64", LatestUBR: true}, "windows/amd64:latest-ubr"},
		{"ltsc2022", Spec{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348"}, "windows/amd64:10.0.20348"},
		{"LTSC2019:latest-ubr", Spec{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763", LatestUBR: true}, "windows/amd64:10.0.17763:latest-ubr"},
		{"1809", Spec{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763"}, "windows/amd64:10.0.17763"},
		{"all", Spec{All: true}, ""},
		{"ALL", Spec{All: true}, "all"},
	}
	for _, tc := range cases {
		got, err := ParseSpec(tc.in)
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseSpec(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		want := tc.str
		if want == "" {
			want = tc.in
		}
		if got.String() != want {
			t.Errorf("ParseSpec(%q).String() = %q, want %q", tc.in, got.String(), want)
		}
		again, err := ParseSpec(got.String())
		if err != nil || again != got {
			t.Errorf("ParseSpec(%q) does not round-trip: %+v, %v", got.String(), again, err)
		}
	}
}

func TestParseSpecErrors(t *testing.T) {
	for in, why := range map[string]string{
		"":                                    "empty",
		"windows":                             "",
		"windows/":                            `"" is not`,
		"/amd64":                              `"" is not`,
		"a/b/c/d":                             "",
		"windows/amd 64":                      `"amd 64" is not`,
		"windows/amd64:abc":                   "neither an os.version nor an alias",
		"windows/amd64:10.0.x":                "neither",
		"windows/amd64:10..0":                 "neither",
		"windows/amd64:10.0.17763.1.2":        "more than four fields",
		"windows/amd64:":                      "neither",
		"windows/amd64::latest-ubr":           "neither",
		"windows/amd64:1:2":                   "too many",
		"windows/amd64:latest-ubr:10.0.17763": "must come last",
		"windows/amd64:10.0:latest-ubr:x":     "must come last",
		"windows/amd64:10.0:10.0":             "too many",
		"ltsc2022:10.0.20348":                 "alias already",
		"all:latest-ubr":                      "",
		"latest-ubr":                          "",
	} {
		_, err := ParseSpec(in)
		if !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("ParseSpec(%q) = %v, want ErrInvalidSpec", in, err)
			continue
		}
		prefix := `invalid platform "` + in + `": want os/arch[/variant][:os.version][:latest-ubr]`
		if !strings.HasPrefix(err.Error(), prefix) {
			t.Errorf("ParseSpec(%q): %q does not start with %q", in, err, prefix)
		}
		if !strings.Contains(err.Error(), why) {
			t.Errorf("ParseSpec(%q): %q does not say %q", in, err, why)
		}
	}
}

func TestMatches(t *testing.T) {
	win := func(v string) v1.Platform { return v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: v} }
	cases := []struct {
		spec string
		p    v1.Platform
		want bool
	}{
		{"windows/amd64", win("10.0.17763.5830"), true},
		{"windows/amd64", win(""), true},
		{"Windows/AMD64", v1.Platform{OS: "WINDOWS", Architecture: "amd64"}, true},
		{"windows/amd64", v1.Platform{OS: "linux", Architecture: "amd64"}, false},
		{"windows/arm64", win("10.0.17763.1"), false},
		{"windows/amd64:10.0.17763", win("10.0.17763.5830"), true},
		{"windows/amd64:10.0.17763", win("10.0.17763"), true},
		{"windows/amd64:10.0.17763", win("10.0.177630.1"), false},
		{"windows/amd64:10.0.1776", win("10.0.17763.1"), false},
		{"windows/amd64:10.0.17763", win("10.0.20348.1"), false},
		{"windows/amd64:10.0.17763", win(""), false},
		{"windows/amd64:10.0", win("10.0.17763.1"), true},
		{"windows/amd64:10.0.17763.5830", win("10.0.17763.5830"), true},
		{"windows/amd64:10.0.17763.5830", win("10.0.17763.58300"), false},
		{"windows/amd64:10.0.17763.5830", win("10.0.17763.583"), false},
		{"windows/amd64:10.0.17763.5830", win("10.0.17763"), false},
		{"windows/amd64:ltsc2019", win("10.0.17763.10"), true},
		{"windows/amd64:ltsc2022", win("10.0.17763.10"), false},
		{"windows/amd64:ltsc2019:latest-ubr", win("10.0.17763.9"), true}, // LatestUBR is Select's
		{"linux/x86_64", v1.Platform{OS: "linux", Architecture: "amd64"}, true},
		{"linux/amd64", v1.Platform{OS: "linux", Architecture: "x86_64"}, true},
		{"linux/arm64", v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, true},
		{"linux/arm64/v8", v1.Platform{OS: "linux", Architecture: "arm64"}, true},
		{"linux/arm64/v8", v1.Platform{OS: "linux", Architecture: "aarch64"}, true},
		{"linux/aarch64", v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, true},
		{"linux/arm64/v9", v1.Platform{OS: "linux", Architecture: "arm64"}, false},
		{"linux/arm64/v8", v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v9"}, false},
		{"linux/arm", v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, true},
		{"linux/arm/v7", v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, false},
		{"linux/arm/v7", v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, true},
		{"linux/armhf", v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, true},
		{"all", v1.Platform{}, true},
	}
	for _, tc := range cases {
		sp, err := ParseSpec(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := sp.Matches(tc.p); got != tc.want {
			t.Errorf("%s matches %s: %v, want %v", tc.spec, Format(&tc.p), got, tc.want)
		}
	}
}

// winIndex is a realistic Windows index: several update revisions of
// ltsc2019 and ltsc2022, a linux entry and one without a platform.
func winIndex() []v1.Descriptor {
	p := func(os, arch, ver string) *v1.Platform {
		return &v1.Platform{OS: os, Architecture: arch, OSVersion: ver}
	}
	return []v1.Descriptor{
		0: {Platform: p("windows", "amd64", "10.0.17763.9")},
		1: {Platform: p("windows", "amd64", "10.0.17763.10")},
		2: {Platform: p("windows", "amd64", "10.0.17763.5830")},
		3: {Platform: p("windows", "amd64", "10.0.20348.2461")},
		4: {Platform: p("windows", "amd64", "10.0.20348.2527")},
		5: {Platform: p("linux", "amd64", "")},
		6: {},
		7: {Platform: p("windows", "amd64", "10.0.17763.5830")}, // same platform again
		8: {Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}},
	}
}

func TestSelect(t *testing.T) {
	cases := []struct {
		specs []string
		want  []int
	}{
		{[]string{"windows/amd64"}, []int{0, 1, 2, 3, 4, 7}},
		{[]string{"windows/amd64:10.0.17763"}, []int{0, 1, 2, 7}},
		{[]string{"ltsc2019"}, []int{0, 1, 2, 7}},
		{[]string{"windows/amd64:1809"}, []int{0, 1, 2, 7}},
		{[]string{"windows/amd64:10.0.17763.9"}, []int{0}},
		{[]string{"windows/amd64:10.0.17763.10"}, []int{1}},
		{[]string{"windows/amd64:10.0.20348.2461"}, []int{3}},
		// latest-ubr: numeric, per build, and keeps equal versions.
		{[]string{"windows/amd64:ltsc2019:latest-ubr"}, []int{2, 7}},
		{[]string{"ltsc2022:latest-ubr"}, []int{4}},
		{[]string{"windows/amd64:latest-ubr"}, []int{2, 4, 7}},
		{[]string{"windows/amd64:10.0:latest-ubr"}, []int{2, 4, 7}},
		{[]string{"windows/amd64:10.0.17763.9:latest-ubr"}, []int{0}},
		// Several specs: union, original order, no duplicates.
		{[]string{"ltsc2022", "linux/x86_64"}, []int{3, 4, 5}},
		{[]string{"linux/amd64", "ltsc2022"}, []int{3, 4, 5}},
		{[]string{"ltsc2019", "ltsc2019", "windows/amd64:10.0.17763.9"}, []int{0, 1, 2, 7}},
		{[]string{"ltsc2019:latest-ubr", "windows/amd64:10.0.17763.9"}, []int{0, 2, 7}},
		{[]string{"linux/arm64"}, []int{8}},
		{[]string{"linux/aarch64/v8"}, []int{8}},
		{[]string{"all"}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8}},
		{[]string{"all", "ltsc2019"}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8}},
		{nil, nil},
	}
	for _, tc := range cases {
		specs := mustSpecs(t, tc.specs...)
		got, err := Select(winIndex(), specs)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Select(%v) = %v, %v; want %v", tc.specs, got, err, tc.want)
		}
	}
}

func TestSelectLatestUBRNumeric(t *testing.T) {
	// As strings "10.0.17763.9" > "10.0.17763.10"; numerically it is not.
	descs := []v1.Descriptor{
		{Platform: &v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763.10"}},
		{Platform: &v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763.9"}},
	}
	got, err := Select(descs, mustSpecs(t, "windows/amd64:10.0.17763:latest-ubr"))
	if err != nil || !reflect.DeepEqual(got, []int{0}) {
		t.Fatalf("got %v, %v; want [0] (10.0.17763.10)", got, err)
	}
}

func TestSelectLatestUBRPerPlatform(t *testing.T) {
	// Each architecture keeps its own newest update revision.
	descs := []v1.Descriptor{
		{Platform: &v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.26100.100"}},
		{Platform: &v1.Platform{OS: "windows", Architecture: "arm64", OSVersion: "10.0.26100.90"}},
		{Platform: &v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.26100.99"}},
	}
	got, err := Select(descs, []Spec{{OS: "windows", Architecture: "amd64", LatestUBR: true}, {OS: "windows", Architecture: "arm64", LatestUBR: true}})
	if err != nil || !reflect.DeepEqual(got, []int{0, 1}) {
		t.Fatalf("got %v, %v; want [0 1]", got, err)
	}
}

func TestSelectNoMatch(t *testing.T) {
	cases := []struct {
		specs  []string
		descs  []v1.Descriptor
		inMsg  []string
		notMsg []string
	}{
		{
			specs: []string{"ltsc2025"},
			descs: winIndex(),
			inMsg: []string{`"windows/amd64:10.0.26100"`, "windows/amd64:10.0.17763.9", "windows/amd64:10.0.20348.2527", "linux/amd64", "linux/arm64/v8", "(no platform)"},
		},
		{
			specs:  []string{"ltsc2019", "windows/arm64", "linux/ppc64le"},
			descs:  winIndex(),
			inMsg:  []string{`"windows/arm64"`, `"linux/ppc64le"`},
			notMsg: []string{`"windows/amd64:10.0.17763"`},
		},
		{
			specs: []string{"windows/amd64:10.0.17763.11:latest-ubr"},
			descs: winIndex(),
			inMsg: []string{`"windows/amd64:10.0.17763.11:latest-ubr"`},
		},
		{specs: []string{"linux/amd64"}, descs: nil, inMsg: []string{"empty"}},
		{specs: []string{"windows/amd64"}, descs: []v1.Descriptor{{}}, inMsg: []string{"(no platform)"}},
	}
	for _, tc := range cases {
		_, err := Select(tc.descs, mustSpecs(t, tc.specs...))
		if !errors.Is(err, ErrNoMatch) {
			t.Errorf("Select(%v) = %v, want ErrNoMatch", tc.specs, err)
			continue
		}
		for _, s := range tc.inMsg {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("Select(%v): %q does not mention %s", tc.specs, err, s)
			}
		}
		for _, s := range tc.notMsg {
			if strings.Contains(err.Error(), s) {
				t.Errorf("Select(%v): %q mentions %s", tc.specs, err, s)
			}
		}
	}
	// Each available platform is listed once.
	_, err := Select(winIndex(), mustSpecs(t, "ltsc2025"))
	if n := strings.Count(err.Error(), "10.0.17763.5830"); n != 1 {
		t.Errorf("%q lists 10.0.17763.5830 %d times", err, n)
	}
}

func TestFormat(t *testing.T) {
	for want, p := range map[string]*v1.Platform{
		"windows/amd64:10.0.17763.5830": {OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763.5830"},
		"linux/arm64/v8":                {OS: "linux", Architecture: "arm64", Variant: "v8"},
		"linux/amd64":                   {OS: "linux", Architecture: "amd64"},
		"unknown":                       nil,
	} {
		if got := Format(p); got != want {
			t.Errorf("Format = %q, want %q", got, want)
		}
	}
}

func TestCompareOSVersion(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"10.0.17763.10", "10.0.17763.9", 1},
		{"10.0.17763.9", "10.0.17763.10", -1},
		{"10.0.17763.5830", "10.0.17763.5830", 0},
		{"10.0.20348.1", "10.0.17763.9999", 1},
		{"10.0.17763", "10.0.17763.0", 0},
		{"10.0.17763", "10.0.17763.1", -1},
		{"10.0.017763", "10.0.17763", 0},
		{"", "0", 0},
		{"", "10.0", -1},
		{"99999999999999999999999", "9999999999999999999999", 1}, // beyond uint64
		{"10.0.x", "10.0.9", 1},
		{"10.0.a", "10.0.b", -1},
	}
	for _, tc := range cases {
		if got := CompareOSVersion(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareOSVersion(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func mustSpecs(t *testing.T, ss ...string) []Spec {
	t.Helper()
	var specs []Spec
	for _, s := range ss {
		sp, err := ParseSpec(s)
		if err != nil {
			t.Fatalf("ParseSpec(%q): %v", s, err)
		}
		specs = append(specs, sp)
	}
	return specs
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{
		"windows/amd64:ltsc2019:latest-ubr", "linux/arm64/v8", "all", "ltsc2022",
		"windows/amd64:10.0.17763.5830", "windows/amd64:latest-ubr", "linux/x86_64",
		"windows/amd64:1:2", "",
	} {
		f.Add(s)
	}
	descs := winIndex()
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := ParseSpec(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("ParseSpec(%q): %v does not wrap ErrInvalidSpec", s, err)
			}
			return
		}
		again, err := ParseSpec(sp.String())
		if err != nil {
			t.Fatalf("ParseSpec(%q).String() = %q does not parse: %v", s, sp.String(), err)
		}
		if again != sp {
			t.Fatalf("ParseSpec(%q) = %+v, but its String %q parses to %+v", s, sp, sp.String(), again)
		}
		sel, err := Select(descs, []Spec{sp})
		if err != nil && !errors.Is(err, ErrNoMatch) {
			t.Fatalf("Select: %v", err)
		}
		for k, i := range sel {
			if i < 0 || i >= len(descs) || k > 0 && sel[k-1] >= i {
				t.Fatalf("Select(%q) = %v: out of range or order", s, sel)
			}
		}
	})
}
