package platform

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func winIndex() []v1.Descriptor {
	p := func(os, arch, ver string) *v1.Platform {
		return &v1.Platform{OS: os, Architecture: arch, OSVersion: ver}
	}
	return []v1.Descriptor{
		{Platform: p("windows", "amd64", "10.0.17763.9")},
		{Platform: p("windows", "amd64", "10.0.17763.10")},
		{Platform: p("windows", "amd64", "10.0.20348.5")},
		{Platform: p("linux", "amd64", "")},
		{},
	}
}

func TestSelect(t *testing.T) {
	cases := []struct {
		specs []string
		want  []int
	}{
		{[]string{"windows/amd64:10.0.17763"}, []int{0, 1}},
		{[]string{"ltsc2019"}, []int{0, 1}},
		{[]string{"windows/amd64:1809"}, []int{0, 1}},
		{[]string{"windows/amd64:ltsc2019:latest-ubr"}, []int{1}},
		{[]string{"windows/amd64:latest-ubr"}, []int{2}},
		{[]string{"ltsc2022", "linux/x86_64"}, []int{2, 3}},
		{[]string{"windows/amd64:10.0.17763.9"}, []int{0}},
		{[]string{"all"}, []int{0, 1, 2, 3, 4}},
	}
	for _, tc := range cases {
		var specs []Spec
		for _, s := range tc.specs {
			sp, err := ParseSpec(s)
			if err != nil {
				t.Fatalf("%s: %v", s, err)
			}
			specs = append(specs, sp)
		}
		got, err := Select(winIndex(), specs)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v: got %v, %v; want %v", tc.specs, got, err, tc.want)
		}
	}
}

func TestSelectNoMatch(t *testing.T) {
	sp, _ := ParseSpec("ltsc2025")
	_, err := Select(winIndex(), []Spec{sp})
	if !errors.Is(err, ErrNoMatch) {
		t.Fatalf("got %v", err)
	}
	if want := "windows/amd64:10.0.20348.5"; !strings.Contains(err.Error(), want) {
		t.Errorf("%q does not list %s", err, want)
	}
}

func TestParseSpecErrors(t *testing.T) {
	for _, s := range []string{"", "windows", "windows/", "/amd64", "windows/amd64:abc", "windows/amd64:1:2", "a/b/c/d"} {
		if _, err := ParseSpec(s); err == nil {
			t.Errorf("%q: no error", s)
		}
	}
}

func TestCompareOSVersion(t *testing.T) {
	if CompareOSVersion("10.0.17763.10", "10.0.17763.9") != 1 || CompareOSVersion("10.0.1", "10.0.1") != 0 {
		t.Fatal("numeric comparison wrong")
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"windows/amd64:ltsc2019:latest-ubr", "linux/arm64/v8", "all", "ltsc2022"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := ParseSpec(s)
		if err != nil {
			return
		}
		if _, err := ParseSpec(sp.String()); err != nil {
			t.Fatalf("%q -> %q does not reparse: %v", s, sp.String(), err)
		}
	})
}
