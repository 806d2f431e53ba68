package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

// TestBareNamesAreNotDockerHub: typos of a transport, an existing file
// and a registry host without a repository are usage errors saying what
// was meant, not a lookup of index.docker.io (issue 18 item 13).
func TestBareNamesAreNotDockerHub(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := os.WriteFile("amd64.tar", []byte("not yet"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"inspect", "amd64.tar"}, "did you mean"},
		{[]string{"tags", "localhost:5000"}, "no repository"},
		{[]string{"copy", "oci:x", "ocii:foo"}, "did you mean oci:?"},
		{[]string{"inspect", "oci-archiv:x.tar"}, "did you mean oci-archive:?"},
	} {
		_, stderr, code := run(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "docker.io") && !strings.Contains(stderr, "docker://") {
			t.Errorf("%v: exit %d, want 2 saying %q: %s", c.args, code, c.want, stderr)
		}
	}
}

// TestBundleImageByReference: an image inside a bundle is addressed by the
// reference the bundle records (the first ':' before a full reference
// splits, as skopeo reads it) or by digest (issue 18 item 14).
func TestBundleImageByReference(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	file := filepath.Join(t.TempDir(), "b.tar")
	single, index := e.Reg.Ref(fixture.Repo, fixture.SingleTag), e.Reg.Ref(fixture.Repo, fixture.IndexTag)
	if _, stderr, code := run(t, "bundle", "create", "--foreign-allow", allowLoopback, "-o", file, single, index); code != 0 {
		t.Fatalf("bundle create: exit %d: %s", code, stderr)
	}
	for arg, want := range map[string]string{
		"oci-archive:" + file + ":" + single:                  e.SingleID.String(),
		"oci-archive:" + file + ":" + index:                   e.Index.String(),
		"oci-archive:" + file + "@" + e.SingleID.String():     e.SingleID.String(),
		"oci-archive:" + file + "@" + e.Manifests[1].String(): e.Manifests[1].String(), // a manifest inside the index
	} {
		out, stderr, code := run(t, "digest", arg)
		if code != 0 || strings.TrimSpace(out) != want {
			t.Errorf("digest %s: exit %d, %q, want %s: %s", arg, code, out, want, stderr)
		}
	}
	if _, stderr, code := run(t, "copy", single, "oci-archive:"+file+"@"+e.SingleID.String()); code != 2 {
		t.Errorf("writing an archive by digest: exit %d, want 2: %s", code, stderr)
	}
}

// TestUserPartHiddenInUsageErrors: a reference, registry host or S3
// endpoint given with user:password@ is refused as bad input without the
// password in the message, whether or not it parses as a URL, and the
// message still names the rest.
func TestUserPartHiddenInUsageErrors(t *testing.T) {
	out := filepath.Join(t.TempDir(), "layout")
	for _, args := range [][]string{
		{"catalog", "https://user:SECRET@127.0.0.1:1/"},
		{"catalog", "user:SECRET@127.0.0.1:1"},
		{"copy", "https://user:SECRET@127.0.0.1:1/app:v1", "oci:" + out},
		{"copy", "user:SECRET@127.0.0.1:1/app:v1", "oci:" + out},
		{"serve", "--s3-bucket", "b", "--s3-endpoint", "https://key:SECRET@s3.example:port/"},
	} {
		_, stderr, code := run(t, args...)
		if code == 0 || strings.Contains(stderr, "SECRET") || !strings.Contains(stderr, "127.0.0.1:1") && !strings.Contains(stderr, "s3.example:port") {
			t.Errorf("ferry %s: exit %d, want a failure naming the host without the password: %s", strings.Join(args, " "), code, stderr)
		}
	}
}
