package location

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

const (
	hex64  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	hex128 = hex64 + hex64
	dig    = "sha256:" + hex64
)

func TestParse(t *testing.T) {
	cases := []struct {
		in                string
		kind              Kind
		path, tag, digest string
		ref               string // Ref.Name(), registry only
		digestRef         bool   // Ref is a name.Digest
		explicit          bool
		str               string // String(); "" means same as in
	}{
		// Registry references.
		{in: "localhost:5000/app:v1", ref: "localhost:5000/app:v1", explicit: true},
		{in: "localhost:5000/app", ref: "localhost:5000/app:latest", str: "localhost:5000/app:latest"},
		{in: "localhost/app", ref: "localhost/app:latest", str: "localhost/app:latest"},
		{in: "myhost:5000/repo", ref: "myhost:5000/repo:latest", str: "myhost:5000/repo:latest"},
		{in: "docker://localhost:5000/a", ref: "localhost:5000/a:latest", str: "localhost:5000/a:latest"},
		{in: "docker://alpine", ref: "index.docker.io/library/alpine:latest", str: "index.docker.io/library/alpine:latest"},
		{in: "registry.example.com:443/a/b:v1", ref: "registry.example.com:443/a/b:v1", explicit: true},
		{in: "mcr.microsoft.com/windows/nanoserver:ltsc2022", ref: "mcr.microsoft.com/windows/nanoserver:ltsc2022", explicit: true},
		{in: "127.0.0.1:5000/a/b/c:1.0", ref: "127.0.0.1:5000/a/b/c:1.0", explicit: true},
		{in: "[::1]:5000/x", ref: "[::1]:5000/x:latest", str: "[::1]:5000/x:latest"},
		{in: "alpine", ref: "index.docker.io/library/alpine:latest", str: "index.docker.io/library/alpine:latest"},
		{in: "alpine:3.20", ref: "index.docker.io/library/alpine:3.20", explicit: true, str: "index.docker.io/library/alpine:3.20"},
		{in: "docker:27-dind", ref: "index.docker.io/library/docker:27-dind", explicit: true, str: "index.docker.io/library/docker:27-dind"},
		{in: "foo:bar", ref: "index.docker.io/library/foo:bar", explicit: true, str: "index.docker.io/library/foo:bar"},
		{in: "docker.io/library/ubuntu", ref: "index.docker.io/library/ubuntu:latest", str: "index.docker.io/library/ubuntu:latest"},
		{in: "user/app:v2", ref: "index.docker.io/user/app:v2", explicit: true, str: "index.docker.io/user/app:v2"},
		{in: "localhost:5000/a@" + dig, ref: "localhost:5000/a@" + dig, digestRef: true, explicit: true},
		{in: "docker://localhost:5000/a@" + dig, ref: "localhost:5000/a@" + dig, digestRef: true, explicit: true, str: "localhost:5000/a@" + dig},
		{in: "alpine@" + dig, ref: "index.docker.io/library/alpine@" + dig, digestRef: true, explicit: true, str: "index.docker.io/library/alpine@" + dig},
		// Tag and digest: the digest wins, as in ggcr.
		{in: "localhost:5000/a:v1@" + dig, ref: "localhost:5000/a@" + dig, digestRef: true, explicit: true, str: "localhost:5000/a@" + dig},
		{in: "alpine:3.20@" + dig, ref: "index.docker.io/library/alpine@" + dig, digestRef: true, explicit: true, str: "index.docker.io/library/alpine@" + dig},
		// A registry host named like a transport needs docker://, kept by String.
		{in: "docker://oci:5000/x", ref: "oci:5000/x:latest", str: "docker://oci:5000/x:latest"},
		{in: "docker://dir:5000/x:t", ref: "dir:5000/x:t", explicit: true, str: "docker://dir:5000/x:t"},
		{in: "docker:5000/x", ref: "docker:5000/x:latest", str: "docker:5000/x:latest"},
		// A name without a dot and a number: a Docker Hub NAME:TAG.
		{in: "node:20", ref: "index.docker.io/library/node:20", explicit: true, str: "index.docker.io/library/node:20"},

		// oci: layouts.
		{in: "oci:/tmp/layout:tag", kind: OCILayout, path: "/tmp/layout", tag: "tag"},
		{in: "oci:layout", kind: OCILayout, path: "layout"},
		{in: "oci:./layout:v1.2_3-rc", kind: OCILayout, path: "./layout", tag: "v1.2_3-rc"},
		{in: "oci:5000/x", kind: OCILayout, path: "5000/x"},
		{in: "oci:/data/a:b/c", kind: OCILayout, path: "/data/a:b/c"},
		{in: "oci:/data/a:b:c", kind: OCILayout, path: "/data/a:b", tag: "c"},
		{in: "oci:dir:bad tag!", kind: OCILayout, path: "dir:bad tag!"},
		{in: "oci:dir:", kind: OCILayout, path: "dir:"},
		{in: "oci:dir@" + dig, kind: OCILayout, path: "dir", digest: dig},
		{in: "oci:dir@sha512:" + hex128, kind: OCILayout, path: "dir", digest: "sha512:" + hex128},
		{in: "oci:dir:v1@" + dig, kind: OCILayout, path: "dir", tag: "v1", digest: dig},
		{in: "oci:user@host/dir", kind: OCILayout, path: "user@host/dir"},
		{in: "oci://server/share", kind: OCILayout, path: "//server/share"},
		// Windows paths.
		{in: `oci:C:\images\layout:tag`, kind: OCILayout, path: `C:\images\layout`, tag: "tag"},
		{in: `oci:C:\images\layout`, kind: OCILayout, path: `C:\images\layout`},
		{in: `oci:c:/images/layout:v1`, kind: OCILayout, path: `c:/images/layout`, tag: "v1"},
		{in: `oci:C:\`, kind: OCILayout, path: `C:\`},
		{in: `oci:C:\images\layout@` + dig, kind: OCILayout, path: `C:\images\layout`, digest: dig},
		{in: `oci:\\server\share\layout`, kind: OCILayout, path: `\\server\share\layout`},
		{in: `oci:\\server\share\layout:v2`, kind: OCILayout, path: `\\server\share\layout`, tag: "v2"},
		{in: `oci:\\?\C:\very\long\layout`, kind: OCILayout, path: `\\?\C:\very\long\layout`},
		{in: `oci:\\?\C:\very\long\layout:t`, kind: OCILayout, path: `\\?\C:\very\long\layout`, tag: "t"},
		{in: `oci:C:tag`, kind: OCILayout, path: "C", tag: "tag"}, // no slash: not a drive
		{in: `oci:layout\sub:tag`, kind: OCILayout, path: `layout\sub`, tag: "tag"},

		// oci-archive:
		{in: "oci-archive:out.tar:v2", kind: OCIArchive, path: "out.tar", tag: "v2"},
		{in: "oci-archive:out.tar", kind: OCIArchive, path: "out.tar"},
		{in: `oci-archive:D:\archives\out.tar:ltsc2022`, kind: OCIArchive, path: `D:\archives\out.tar`, tag: "ltsc2022"},
		{in: `oci-archive:D:\archives\out.tar`, kind: OCIArchive, path: `D:\archives\out.tar`},
		// An image in a bundle, by the reference it records, as skopeo reads it (issue 18).
		{in: "oci-archive:b.tar:localhost:5000/app:multi", kind: OCIArchive, path: "b.tar", tag: "localhost:5000/app:multi"},
		{in: "oci-archive:b.tar:mcr.microsoft.com/windows/servercore:ltsc2019", kind: OCIArchive, path: "b.tar", tag: "mcr.microsoft.com/windows/servercore:ltsc2019"},
		{in: `oci-archive:D:\b.tar:index.docker.io/library/alpine:3`, kind: OCIArchive, path: `D:\b.tar`, tag: "index.docker.io/library/alpine:3"},
		{in: "oci-archive:b.tar@" + dig, kind: OCIArchive, path: "b.tar", digest: dig},
		{in: "oci:/data/l:localhost:5000/app:v1", kind: OCILayout, path: "/data/l", tag: "localhost:5000/app:v1"},
		{in: "oci:/data/a:b/c:v1", kind: OCILayout, path: "/data/a:b/c", tag: "v1"}, // b is no host: the last ':' as before

		// docker-archive:
		{in: "docker-archive:out.tar", kind: DockerArchive, path: "out.tar"},
		{in: "docker-archive:out.tar:repo:tag", kind: DockerArchive, path: "out.tar", tag: "repo:tag"},
		{in: "docker-archive:out.tar:repo", kind: DockerArchive, path: "out.tar", tag: "repo"},
		{in: "docker-archive:out.tar:localhost:5000/app:v1", kind: DockerArchive, path: "out.tar", tag: "localhost:5000/app:v1"},
		{in: "docker-archive:out.tar:localhost:5000/app", kind: DockerArchive, path: "out.tar", tag: "localhost:5000/app"},
		{in: "docker-archive:/tmp/o.tar:mcr.microsoft.com/windows/servercore:ltsc2019", kind: DockerArchive, path: "/tmp/o.tar", tag: "mcr.microsoft.com/windows/servercore:ltsc2019"},
		{in: `docker-archive:D:\out.tar:repo:tag`, kind: DockerArchive, path: `D:\out.tar`, tag: "repo:tag"},
		{in: `docker-archive:D:\out.tar`, kind: DockerArchive, path: `D:\out.tar`},
		{in: `docker-archive:d:/out.tar:localhost:5000/a/b:c`, kind: DockerArchive, path: `d:/out.tar`, tag: "localhost:5000/a/b:c"},
		{in: `docker-archive:\\srv\share\out.tar:app:v1`, kind: DockerArchive, path: `\\srv\share\out.tar`, tag: "app:v1"},

		// dir: the whole rest is the directory.
		{in: "dir:/tmp/x", kind: Dir, path: "/tmp/x"},
		{in: "dir:./img:v1", kind: Dir, path: "./img:v1"},
		{in: "dir:img@" + dig, kind: Dir, path: "img@" + dig},
		{in: "dir:5000/x", kind: Dir, path: "5000/x"},
		{in: `dir:C:\images\x:v1`, kind: Dir, path: `C:\images\x:v1`},
		{in: `dir:\\server\share\img`, kind: Dir, path: `\\server\share\img`},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			l, err := Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if l.Raw != tc.in {
				t.Errorf("Raw = %q", l.Raw)
			}
			if l.Kind != tc.kind || l.Path != tc.path || l.Tag != tc.tag || l.Digest != tc.digest {
				t.Errorf("got kind %v path %q tag %q digest %q; want %v %q %q %q", l.Kind, l.Path, l.Tag, l.Digest, tc.kind, tc.path, tc.tag, tc.digest)
			}
			if l.IsLocal() != (tc.kind != Registry) {
				t.Errorf("IsLocal = %v", l.IsLocal())
			}
			if tc.kind == Registry {
				if l.Ref == nil {
					t.Fatal("no Ref")
				}
				if l.Ref.Name() != tc.ref {
					t.Errorf("Ref.Name() = %q, want %q", l.Ref.Name(), tc.ref)
				}
				if _, ok := l.Ref.(name.Digest); ok != tc.digestRef {
					t.Errorf("Ref is %T", l.Ref)
				}
				if l.ExplicitTag != tc.explicit {
					t.Errorf("ExplicitTag = %v, want %v", l.ExplicitTag, tc.explicit)
				}
			} else if l.Ref != nil || l.ExplicitTag {
				t.Errorf("local location has Ref %v, ExplicitTag %v", l.Ref, l.ExplicitTag)
			}
			want := tc.str
			if want == "" {
				want = tc.in
			}
			if got := l.String(); got != want {
				t.Errorf("String() = %q, want %q", got, want)
			}
			l2, err := Parse(l.String())
			if err != nil {
				t.Fatalf("String() %q does not parse: %v", l.String(), err)
			}
			if l2.Kind != l.Kind || l2.Path != l.Path || l2.Tag != l.Tag || l2.Digest != l.Digest {
				t.Errorf("String() %q parses to %+v", l.String(), l2)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		in   string
		want error
		msg  string // a substring of the message
	}{
		{"", ErrInvalid, "empty location"},
		{"s3:bucket/x", ErrUnknownTransport, `unknown transport "s3"`},
		{"foo:bar/baz", ErrUnknownTransport, `"foo"`},
		{"ftp://host/x", ErrUnknownTransport, "oci-archive:"},
		{"dir:", ErrInvalid, "no directory"},
		{"http://localhost:5000/a", ErrInvalid, "URL scheme"},
		{"https://registry.example.com/a", ErrInvalid, "URL scheme"},
		{"docker:/x", ErrInvalid, "docker://"},
		{"docker:alpine/x", ErrInvalid, "docker://"},
		{"docker://", ErrInvalid, "no image reference"},
		{"docker://UPPER/x", ErrInvalid, "repository can only contain"},
		{"UPPER/Case:tag", ErrInvalid, "not an image reference"},
		{"localhost:5000/a b", ErrInvalid, `"localhost:5000/a b"`},
		{"localhost:5000/a:", ErrInvalid, "tag"},
		{"localhost:5000/a@sha256:abc", ErrInvalid, "not an image reference"},
		{"registry.example.com/a:" + strings.Repeat("t", 129), ErrInvalid, "tag"},
		{`C:\images\layout`, ErrInvalid, "oci:PATH"},
		{`c:/images/layout`, ErrInvalid, "oci:PATH"},
		{"./layout", ErrInvalid, "oci:PATH"},
		{"../layout:v1", ErrInvalid, "oci:PATH"},
		{"/abs/layout", ErrInvalid, "oci:PATH"},
		{`\\server\share\layout`, ErrInvalid, "oci:PATH"},
		{"~/layout", ErrInvalid, "oci:PATH"},
		{"docker://./x", ErrInvalid, "oci:PATH"},
		{"oci:", ErrInvalid, "no directory"},
		{"oci::tag", ErrInvalid, "no directory"},
		{"oci:@" + dig, ErrInvalid, "no directory"},
		{"oci:dir@sha256:abc", ErrInvalid, "not a valid digest"},
		{"oci:dir@sha256:" + strings.ToUpper(hex64), ErrInvalid, "not a valid digest"},
		{"oci-archive:", ErrInvalid, "no file"},
		// Typos of a transport: not a Docker Hub NAME:TAG (issue 18).
		{"ocii:foo", ErrUnknownTransport, "did you mean oci:?"},
		{"oci-archiv:x.tar", ErrUnknownTransport, "did you mean oci-archive:?"},
		{"oic-archive:x.tar", ErrUnknownTransport, "did you mean oci-archive:?"},
		{"docker-archiv:x.tar", ErrUnknownTransport, "did you mean docker-archive:?"},
		{"dri:x", ErrUnknownTransport, "did you mean dir:?"},
		{"dockr:alpine", ErrUnknownTransport, "did you mean docker://?"},
		// A registry host without a repository (ggcr: library/HOST:PORT on Docker Hub).
		{"localhost:5000", ErrInvalid, "no repository"},
		{"localhost", ErrInvalid, "no repository"},
		{"docker://localhost:5000", ErrInvalid, "no repository"},
		{"registry.example.com:443", ErrInvalid, "no repository"},
		{"10.0.0.5:5000", ErrInvalid, "no repository"},
		{"[::1]:5000", ErrInvalid, "no repository"},
		{"missing.tar", ErrInvalid, "no repository"},
		{"docker-archive:", ErrInvalid, "no file"},
		{"docker-archive::repo:tag", ErrInvalid, "no file"},
		{"docker-archive:out.tar:", ErrInvalid, "no image reference"},
		{"docker-archive:out.tar:Bad/Repo:tag", ErrInvalid, "REPO:TAG"},
		{"docker-archive:out.tar:repo@" + dig, ErrInvalid, "digest"},
		{"docker-archive:a:b:c:d", ErrInvalid, "REPO:TAG"},
	}
	for _, tc := range cases {
		_, err := Parse(tc.in)
		if !errors.Is(err, tc.want) {
			t.Errorf("Parse(%q) = %v, want %v", tc.in, err, tc.want)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.msg) {
			t.Errorf("Parse(%q): %q does not mention %q", tc.in, msg, tc.msg)
		}
		if tc.in != "" && !strings.Contains(msg, `"`+strings.ReplaceAll(tc.in, `\`, `\\`)+`"`) {
			t.Errorf("Parse(%q): %q does not quote the input", tc.in, msg)
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("Parse(%q): message has several lines: %q", tc.in, msg)
		}
	}
}

func TestWithInsecure(t *testing.T) {
	l, err := Parse("registry.example.com/a", WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Ref.Context().Scheme(); got != "http" {
		t.Errorf("insecure scheme = %q", got)
	}
	l, err = Parse("registry.example.com/a")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Ref.Context().Scheme(); got != "https" {
		t.Errorf("secure scheme = %q", got)
	}
}

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost":            true,
		"localhost:5000":       true,
		"LOCALHOST:5000":       true,
		"127.0.0.1":            true,
		"127.0.0.1:5000":       true,
		"127.3.4.5:443":        true,
		"::1":                  true,
		"[::1]":                true,
		"[::1]:5000":           true,
		"":                     false,
		"localhost.example":    false,
		"mylocalhost:5000":     false,
		"128.0.0.1":            false,
		"10.0.0.1:5000":        false,
		"192.168.1.1":          false,
		"[::2]:5000":           false,
		"registry.example.com": false,
		"index.docker.io":      false,
	} {
		if got := IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestPlainHTTP(t *testing.T) {
	cases := []struct {
		in             string
		secure, insecu bool // PlainHTTP(false), PlainHTTP(true)
	}{
		{"localhost:5000/a", true, true},
		{"localhost/a", true, true},
		{"127.0.0.1:5000/a", true, true},
		{"[::1]:5000/a", true, true},
		{"registry.example.com/a", false, true},
		{"10.0.0.1:5000/a", false, true},
		{"alpine", false, true},
		{"oci:/tmp/x", false, false},
		{"docker-archive:x.tar", false, false},
	}
	for _, tc := range cases {
		l, err := Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := l.PlainHTTP(false); got != tc.secure {
			t.Errorf("%s: PlainHTTP(false) = %v", tc.in, got)
		}
		if got := l.PlainHTTP(true); got != tc.insecu {
			t.Errorf("%s: PlainHTTP(true) = %v", tc.in, got)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{Registry: "registry", OCILayout: "oci", OCIArchive: "oci-archive", DockerArchive: "docker-archive", Kind(9): "Kind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("%d: %q, want %q", int(k), got, want)
		}
	}
}

// TestParseExistingFile: a registry reference that names a file or
// directory here gets the prefix it needs rather than a Docker Hub lookup.
func TestParseExistingFile(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("amd64.tar", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("images/app", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("images/app/index.json", []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for in, msg := range map[string]string{
		"amd64.tar":  "did you mean oci:, oci-archive:, docker-archive: or dir:",
		"images/app": "did you mean oci:images/app?",
	} {
		_, err := Parse(in)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), msg) || strings.Contains(in, ".") == strings.Contains(err.Error(), "docker://"+in) {
			t.Errorf("Parse(%q) = %v, want a hint %q", in, err, msg)
		}
		if _, err := Parse("docker://" + in); err != nil && strings.Contains(err.Error(), "file or directory") {
			t.Errorf("docker://%s: %v", in, err)
		}
	}
}
