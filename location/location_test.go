package location

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in                string
		kind              Kind
		path, tag, digest string
		refName           string
	}{
		{in: "localhost:5000/app:v1", kind: Registry, refName: "localhost:5000/app:v1"},
		{in: "docker://localhost:5000/app", kind: Registry, refName: "localhost:5000/app:latest"},
		{in: "registry.example.com:443/a/b:v1", kind: Registry, refName: "registry.example.com:443/a/b:v1"},
		{in: "alpine", kind: Registry, refName: "index.docker.io/library/alpine:latest"},
		{in: "oci:/tmp/layout:tag", kind: OCILayout, path: "/tmp/layout", tag: "tag"},
		{in: "oci:layout", kind: OCILayout, path: "layout"},
		{in: `oci:C:\images\layout:tag`, kind: OCILayout, path: `C:\images\layout`, tag: "tag"},
		{in: `oci:C:\images\layout`, kind: OCILayout, path: `C:\images\layout`},
		{in: `oci:\\server\share\layout`, kind: OCILayout, path: `\\server\share\layout`},
		{in: "oci:dir@sha256:" + hex64, kind: OCILayout, path: "dir", digest: "sha256:" + hex64},
		{in: "oci-archive:out.tar:v2", kind: OCIArchive, path: "out.tar", tag: "v2"},
		{in: "docker-archive:out.tar", kind: DockerArchive, path: "out.tar"},
		{in: "docker-archive:out.tar:localhost:5000/app:v1", kind: DockerArchive, path: "out.tar", tag: "localhost:5000/app:v1"},
		{in: `docker-archive:D:\out.tar:repo:tag`, kind: DockerArchive, path: `D:\out.tar`, tag: "repo:tag"},
	}
	for _, tc := range cases {
		l, err := Parse(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if l.Kind != tc.kind || l.Path != tc.path || l.Tag != tc.tag || l.Digest != tc.digest {
			t.Errorf("%s: got %+v", tc.in, l)
		}
		if tc.refName != "" && l.Ref.Name() != tc.refName {
			t.Errorf("%s: ref %s, want %s", tc.in, l.Ref.Name(), tc.refName)
		}
	}
}

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseErrors(t *testing.T) {
	for in, want := range map[string]error{
		"":                   ErrInvalid,
		"s3:bucket/x":        ErrUnknownTransport,
		"foo:bar":            ErrUnknownTransport,
		"UPPER/Case:tag":     ErrInvalid,
		"oci:":               ErrInvalid,
		"oci:dir:bad tag!":   ErrInvalid,
		"docker-archive:":    ErrInvalid,
		"localhost:5000/a b": ErrInvalid,
	} {
		if _, err := Parse(in); !errors.Is(err, want) {
			t.Errorf("%q: got %v, want %v", in, err, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"localhost:5000/a:b", `oci:C:\x:y`, "docker-archive:a.tar:r:t", "oci-archive:x", "docker://a/b@sha256:" + hex64} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err != nil {
			return
		}
		l2, err := Parse(l.String())
		if err != nil {
			t.Fatalf("%q -> %q does not reparse: %v", s, l.String(), err)
		}
		if l2.Kind != l.Kind || l2.Path != l.Path || l2.Tag != l.Tag || l2.Digest != l.Digest {
			t.Fatalf("%q -> %q reparses differently: %+v vs %+v", s, l.String(), l, l2)
		}
	})
}
