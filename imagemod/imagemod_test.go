package imagemod

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestParseSpec(t *testing.T) {
	s, warnings, err := ParseSpec([]byte(`
image: reg.example/app:multi
tags: [a, b]
annotations: {k: v}
extra: 1
manifests:
  - image: reg.example/app:win
    platform:
      os: windows
      architecture: amd64
      osversion: 10.0.17763.1
      osfeatures: [win32k]
  - image: reg.example/app:win2
    platform:
      os.version: 10.0.20348.1
      os.features: [x]
  - image: reg.example/app:linux
`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Image != "reg.example/app:multi" || strings.Join(s.Tags, ",") != "a,b" || s.Annotations["k"] != "v" || len(s.Manifests) != 3 {
		t.Errorf("spec %+v", s)
	}
	if p := s.Manifests[0].Platform; p.OSVersion != "10.0.17763.1" || p.OSFeatures[0] != "win32k" || p.OS != "windows" {
		t.Errorf("manifest-tool spelling: %+v", p)
	}
	if p := s.Manifests[1].Platform; p.OSVersion != "10.0.20348.1" || p.OSFeatures[0] != "x" || p.OS != "" {
		t.Errorf("OCI spelling: %+v", p)
	}
	if s.Manifests[2].Platform != nil {
		t.Errorf("no platform given, got %+v", s.Manifests[2].Platform)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "spec.extra") {
		t.Errorf("warnings %q", warnings)
	}
	for _, bad := range []string{
		"manifests: [{image: x}]",
		"image: x",
		"image: x\nmanifests: [{platform: {os: linux}}]",
		"image: x\nmanifests: [{image: y, platform: {osversion: '1', os.version: '2'}}]",
		"image: [",
	} {
		if _, _, err := ParseSpec([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestBaseHistoryLen(t *testing.T) {
	l := func(by string) v1.History { return v1.History{CreatedBy: by} }
	e := func(by string) v1.History { return v1.History{CreatedBy: by, EmptyLayer: true} }
	base := []v1.History{l("b0"), e("env"), l("b1"), e("cmd")}
	app := append(append([]v1.History{}, base...), l("a0"), e("label"), l("a1"))
	if n, err := baseHistoryLen(app, base, 2); err != nil || n != 4 {
		t.Errorf("matching history: %d %v, want 4", n, err)
	}
	// An old base without history: up to its last layer.
	if n, err := baseHistoryLen(app, nil, 2); err != nil || n != 3 {
		t.Errorf("no base history: %d %v, want 3", n, err)
	}
	if _, err := baseHistoryLen(app[:2], nil, 2); err == nil {
		t.Error("too short a history accepted")
	}
}

func TestBuild(t *testing.T) {
	for in, want := range map[string]string{"10.0.17763.5830": "10.0.17763", "10.0.20348": "10.0.20348", "": ""} {
		if got := build(in); got != want {
			t.Errorf("build(%q) = %q, want %q", in, got, want)
		}
	}
}
