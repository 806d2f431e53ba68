package location

import (
	"errors"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "alpine", "alpine:3.20", "foo:bar", "s3:bucket/x",
		"localhost:5000/a:b", "docker://localhost:5000/a", "[::1]:5000/x",
		"registry.example.com:443/a/b:v1", "docker://oci:5000/x",
		"localhost:5000/a:v1@" + dig, "alpine@" + dig,
		"oci:/tmp/layout:tag", `oci:C:\x:y`, `oci:C:\x`, `oci:\\server\share\l`,
		`oci:\\?\C:\x:t`, "oci:dir@" + dig, "oci:dir:v1@" + dig, "oci:/a:b/c",
		"oci-archive:x", "oci-archive:out.tar:v2",
		"docker-archive:a.tar:r:t", "docker-archive:out.tar:localhost:5000/app:v1",
		`docker-archive:D:\out.tar:repo:tag`, "dir:x", "http://x/y",
		"oci-archive:b.tar:localhost:5000/app:multi", "oci-archive:b.tar@" + dig,
		"oci:/d/a:b/c:v1", "ocii:foo", "oci-archiv:x.tar", "localhost:5000", "node:20",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnknownTransport) {
				t.Fatalf("Parse(%q): error %v wraps neither sentinel", s, err)
			}
			return
		}
		if l.Raw != s {
			t.Fatalf("Parse(%q): Raw %q", s, l.Raw)
		}
		if (l.Kind == Registry) != (l.Ref != nil) {
			t.Fatalf("Parse(%q): kind %v with Ref %v", s, l.Kind, l.Ref)
		}
		str := l.String()
		l2, err := Parse(str)
		if err != nil {
			t.Fatalf("Parse(%q).String() = %q does not parse: %v", s, str, err)
		}
		if l2.Kind != l.Kind || l2.Path != l.Path || l2.Tag != l.Tag || l2.Digest != l.Digest {
			t.Fatalf("Parse(%q).String() = %q parses differently: %+v vs %+v", s, str, l, l2)
		}
		if l.Kind == Registry && l2.Ref.Name() != l.Ref.Name() {
			t.Fatalf("Parse(%q).String() = %q: Ref.Name() %q vs %q", s, str, l.Ref.Name(), l2.Ref.Name())
		}
		if l2.String() != str {
			t.Fatalf("String() is not stable: %q then %q", str, l2.String())
		}
	})
}
