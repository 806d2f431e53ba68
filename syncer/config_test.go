package syncer

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/transfer"
)

// skopeoExample is the YAML example of skopeo-sync(1).
const skopeoExample = `registry.example.com:
    images:
        busybox: []
        redis:
            - "1.0"
            - "2.0"
            - "sha256:0000000000000000000000000000000011111111111111111111111111111111"
    images-by-tag-regex:
        nginx: ^1\.13\.[12]-alpine-perl$
    images-by-semver:
        alpine: ">= 3.12.0"
    credentials:
        username: john
        password: this is a secret
    tls-verify: true
    cert-dir: /home/john/certs
quay.io:
    tls-verify: false
    images:
        coreos/etcd:
            - latest
`

func TestParseSkopeoExample(t *testing.T) {
	cfg, err := Parse("example.yaml", []byte(skopeoExample))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %v", cfg.Warnings)
	}
	if len(cfg.Registries) != 2 || cfg.Registries[0].Name != "registry.example.com" || cfg.Registries[1].Name != "quay.io" {
		t.Fatalf("registries %+v", cfg.Registries)
	}
	r := cfg.Registries[0]
	if r.Username != "john" || r.Password != "this is a secret" || !r.TLSVerify || r.CertDir != "/home/john/certs" {
		t.Errorf("access %+v", r)
	}
	if len(r.Repos) != 4 {
		t.Fatalf("repos %+v", r.Repos)
	}
	if busybox := r.Repos[0]; busybox.Name != "busybox" || !busybox.All {
		t.Errorf("busybox %+v: want every tag", busybox)
	}
	if redis := r.Repos[1]; redis.All || len(redis.Tags) != 3 || redis.Tags[2] != "sha256:0000000000000000000000000000000011111111111111111111111111111111" {
		t.Errorf("redis %+v", redis)
	}
	if nginx := r.Repos[2]; nginx.Regex == nil || !nginx.Regex.MatchString("1.13.2-alpine-perl") || nginx.Regex.MatchString("1.13.3-alpine-perl") {
		t.Errorf("nginx %+v", nginx)
	}
	if alpine := r.Repos[3]; alpine.Semver == nil || !semverMatch(alpine.Semver, "3.12.1") || semverMatch(alpine.Semver, "3.11.9") || semverMatch(alpine.Semver, "latest") {
		t.Errorf("alpine %+v", alpine)
	}
	q := cfg.Registries[1]
	if q.TLSVerify || len(q.Repos) != 1 || q.Repos[0].Name != "coreos/etcd" || q.Repos[0].Tags[0] != "latest" {
		t.Errorf("quay.io %+v", q)
	}
}

// TestParseRepositoryUnderSeveralSelectors: skopeo reads images,
// images-by-tag-regex and images-by-semver each on its own, so a
// repository under several gets what each selects; twice under one key
// is still refused.
func TestParseRepositoryUnderSeveralSelectors(t *testing.T) {
	cfg, err := Parse("s.yaml", []byte("reg.example:\n  images:\n    alpine: [edge]\n  images-by-tag-regex:\n    alpine: ^3\\.\n  images-by-semver:\n    alpine: \">= 3.19\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	repos := cfg.Registries[0].Repos
	if len(repos) != 1 || repos[0].Name != "alpine" || strings.Join(repos[0].Tags, ",") != "edge" || repos[0].All ||
		repos[0].Regex == nil || repos[0].Regex.String() != `^3\.` || repos[0].Semver == nil {
		t.Errorf("alpine %+v, want edge, the regex and the range together", repos)
	}
	_, err = Parse("s.yaml", []byte("reg.example:\n  images:\n    alpine: [edge]\n    alpine: []\n"))
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "s.yaml:4:5: reg.example/alpine is listed twice") {
		t.Errorf("alpine twice under images: %v", err)
	}
}

func TestParseFerryKeysAndWarnings(t *testing.T) {
	cfg, err := Parse("f.yaml", []byte(`mcr.microsoft.com:
  images:
    windows/servercore: [ltsc2019, ltsc2022]
    windows/nanoserver: []
  platforms: [windows/amd64]
  foreign: include
  keep-ubr: 2
  tls-verfy: false
  repositories:
    windows/nanoserver:
      foreign: localize
      keep-ubr: 1
      colour: blue
`))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Registries[0]
	if len(r.Settings.Platforms) != 1 || r.Settings.Foreign == nil || *r.Settings.Foreign != transfer.Include || r.Settings.KeepUBR != 2 {
		t.Errorf("registry settings %+v", r.Settings)
	}
	nano := r.Settings.over(r.Repos[1].Settings)
	if *nano.Foreign != transfer.Localize || nano.KeepUBR != 1 || len(nano.Platforms) != 1 {
		t.Errorf("nanoserver settings %+v", nano)
	}
	if len(cfg.Warnings) != 2 || !strings.Contains(cfg.Warnings[0], `f.yaml:8:3: mcr.microsoft.com: unknown key "tls-verfy"`) || !strings.Contains(cfg.Warnings[1], `f.yaml:13:7:`) {
		t.Errorf("warnings %q", cfg.Warnings)
	}
}

func TestParseErrorsHaveLineAndColumn(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"reg.example:\n  images:\n    busybox: latest\n", "bad.yaml:3:14: busybox"},
		{"reg.example:\n  images-by-tag-regex:\n    busybox: \"(\"\n", "bad.yaml:3:14: busybox: error parsing regexp"},
		{"reg.example:\n  images-by-semver:\n    alpine: \"~> nope\"\n", "bad.yaml:3:13: alpine"},
		{"reg.example:\n  tls-verify: maybe\n", "bad.yaml:2:15: tls-verify"},
		{"reg.example:\n  keep-ubr: 0\n", "bad.yaml:2:13: keep-ubr must be at least 1"},
		{"reg.example:\n  foreign: sometimes\n", "bad.yaml:2:12: foreign: invalid foreign-layer policy"},
		{"reg.example:\n  images:\n    a: []\n  repositories:\n    b: {keep-ubr: 1}\n", "bad.yaml:5:5: repositories: b is not among"},
		{"reg.example:\n  images: [a, b]\n", "bad.yaml:2:11: images must be a mapping"},
		{"reg.example:\n  images:\n    a: [x\n", "bad.yaml:2: did not find expected"},
		{"- a\n- b\n", "bad.yaml:1:1: the file must be a mapping"},
	} {
		_, err := Parse("bad.yaml", []byte(c.yaml))
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.yaml, err, c.want)
		}
	}
}

// TestParseDocsExample keeps docs/sync.md's nightly mirror file valid.
func TestParseDocsExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/sync.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n# windows.yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/sync.md has no windows.yaml example")
	}
	cfg, err := Parse("docs/sync.md", []byte(block))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) > 0 || len(cfg.Registries) != 2 || cfg.Registries[0].Repos[1].Settings.KeepUBR != 1 {
		t.Errorf("warnings %v, registries %+v", cfg.Warnings, cfg.Registries)
	}
}
