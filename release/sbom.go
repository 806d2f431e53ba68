package main

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"
)

// The CycloneDX 1.5 JSON document this program writes: only the fields it
// fills (https://cyclonedx.org/docs/1.5/json/).
type cdxBOM struct {
	BOMFormat    string          `json:"bomFormat"`
	SpecVersion  string          `json:"specVersion"`
	SerialNumber string          `json:"serialNumber"`
	Version      int             `json:"version"`
	Metadata     cdxMetadata     `json:"metadata"`
	Components   []cdxComponent  `json:"components"`
	Dependencies []cdxDependency `json:"dependencies"`
}

type cdxMetadata struct {
	Timestamp string       `json:"timestamp"`
	Tools     cdxTools     `json:"tools"`
	Component cdxComponent `json:"component"`
}

type cdxTools struct {
	Components []cdxComponent `json:"components"`
}

type cdxComponent struct {
	Type       string        `json:"type"`
	BOMRef     string        `json:"bom-ref,omitempty"`
	Name       string        `json:"name"`
	Version    string        `json:"version,omitempty"`
	PURL       string        `json:"purl,omitempty"`
	Hashes     []cdxHash     `json:"hashes,omitempty"`
	Properties []cdxProperty `json:"properties,omitempty"`
}

type cdxHash struct {
	Alg     string `json:"alg"`
	Content string `json:"content"`
}

type cdxProperty struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type cdxDependency struct {
	Ref       string   `json:"ref"`
	DependsOn []string `json:"dependsOn"`
}

// writeSBOM writes a CycloneDX SBOM of the binary bi describes: ferry's
// module at its version for goos/goarch, the Go standard library of the
// toolchain that built it, and every module linked in (a replacement in
// place of what it replaces), each with its go.sum hash. The serial number
// is derived from the content and the timestamp is the commit's, so the
// file is the same on every run.
func writeSBOM(path string, bi *buildinfo.BuildInfo, goos, goarch string, commitTime time.Time) error {
	main := cdxComponent{
		Type: "application", Name: bi.Main.Path, Version: bi.Main.Version,
		PURL: modulePURL(bi.Main.Path, bi.Main.Version) + "&goos=" + goos + "&goarch=" + goarch,
	}
	main.BOMRef = main.PURL
	for _, s := range bi.Settings {
		if strings.HasPrefix(s.Key, "vcs.") || s.Key == "-trimpath" || s.Key == "CGO_ENABLED" {
			main.Properties = append(main.Properties, cdxProperty{Name: "cdx:gomod:build:env:" + s.Key, Value: s.Value})
		}
	}
	std := cdxComponent{Type: "library", Name: "std", Version: bi.GoVersion, PURL: "pkg:golang/std@" + bi.GoVersion + "?type=module"}
	std.BOMRef = std.PURL
	comps := []cdxComponent{std}
	for _, d := range bi.Deps {
		m := d
		if d.Replace != nil {
			m = d.Replace
		}
		c := cdxComponent{Type: "library", Name: m.Path, Version: m.Version, PURL: modulePURL(m.Path, m.Version)}
		c.BOMRef = c.PURL
		if h, ok := goSumSHA256(m); ok {
			c.Hashes = []cdxHash{{Alg: "SHA-256", Content: h}}
		}
		comps = append(comps, c)
	}
	deps := []cdxDependency{{Ref: main.BOMRef}}
	for _, c := range comps {
		deps[0].DependsOn = append(deps[0].DependsOn, c.BOMRef)
		deps = append(deps, cdxDependency{Ref: c.BOMRef, DependsOn: []string{}})
	}
	bom := cdxBOM{
		BOMFormat: "CycloneDX", SpecVersion: "1.5", Version: 1,
		Metadata: cdxMetadata{
			Timestamp: commitTime.UTC().Format(time.RFC3339),
			Tools:     cdxTools{Components: []cdxComponent{{Type: "application", Name: "ferry release (release/sbom.go)"}}},
			Component: main,
		},
		Components:   comps,
		Dependencies: deps,
	}
	body, err := json.Marshal(bom)
	if err != nil {
		return err
	}
	bom.SerialNumber = contentUUID(body)
	out, err := json.MarshalIndent(bom, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(out, '\n'), 0o644)
}

// modulePURL is a Go module's package URL.
func modulePURL(path, version string) string {
	return fmt.Sprintf("pkg:golang/%s@%s?type=module", path, version)
}

// goSumSHA256 is a module's go.sum hash (h1:, a SHA-256 over the module's
// files) in hex, as cyclonedx-gomod reports it.
func goSumSHA256(m *debug.Module) (string, bool) {
	b64, ok := strings.CutPrefix(m.Sum, "h1:")
	if !ok {
		return "", false
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", false
	}
	return hex.EncodeToString(raw), true
}

// contentUUID is a urn:uuid serial number derived from b (a version 5
// style UUID over its SHA-256), stable for the same content.
func contentUUID(b []byte) string {
	s := sha256.Sum256(b)
	s[6] = s[6]&0x0f | 0x50
	s[8] = s[8]&0x3f | 0x80
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
}
