package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

// TestMirrorInterop: ferry, crane and skopeo pull a Windows manifest
// list, a single Windows image and an OCI image with non-distributable
// layers through ferry serve --proxy in front of the test MCR; digests
// are the upstream's, every blob (foreign ones too) comes from the
// mirror, each foreign blob is downloaded from its URL once; with the
// upstream and the URL server gone, everything pulled still validates.
func TestMirrorInterop(t *testing.T) {
	crane := lookTool(t, "crane")
	skopeo := needSkopeo(t)
	e := fixture.MicrosoftLike(t)
	oci := e.URLs.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.26100.1", ForeignLayers: 1, Layers: 1, Seed: 7, OCI: true})
	ociID := e.Reg.Push(t, "app/oci", "v1", oci)
	host := startServe(t, "--proxy", e.Reg.URL, "--foreign-allow", allowLoopback)
	refs := map[string]string{
		host + "/" + fixture.Repo + ":" + fixture.IndexTag:  e.Index.String(),
		host + "/" + fixture.Repo + ":" + fixture.SingleTag: e.SingleID.String(),
		host + "/app/oci:v1": ociID.String(),
	}
	dir := t.TempDir()
	i := 0
	for ref, want := range refs {
		i++
		// ferry, refusing loopback URLs itself: the foreign bytes can
		// only come from the mirror's blob endpoint.
		out := ferryOK(t, "copy", "--foreign", "include", ref, "oci:"+filepath.Join(dir, "ferry")+":"+strings.ReplaceAll(filepath.Base(ref), ":", "-"))
		if !strings.Contains(out, want) {
			t.Errorf("ferry copy %s: %s, want digest %s", ref, out, want)
		}
		if got := strings.TrimSpace(runTool(t, crane, "digest", "--insecure", ref)); got != want {
			t.Errorf("crane digest %s = %s, want %s", ref, got, want)
		}
		runTool(t, crane, "validate", "--insecure", "--remote", ref)
	}
	for _, d := range e.Foreign {
		if n := e.URLs.Requests("/cdn/" + d.Hex); n != 1 {
			t.Errorf("foreign blob %s downloaded from its URL %d times", d, n)
		}
	}

	// --proxy-foreign localize: the tag is a manifest list crane
	// validates without following a URL; the digest is a new one.
	loc := startServe(t, "--proxy", e.Reg.URL, "--foreign-allow", allowLoopback, "--proxy-foreign", "localize")
	ref := loc + "/" + fixture.Repo + ":" + fixture.IndexTag
	if got := strings.TrimSpace(runTool(t, crane, "digest", "--insecure", ref)); got == e.Index.String() {
		t.Errorf("localize: the tag is the upstream's index %s", got)
	}
	runTool(t, crane, "validate", "--insecure", "--remote", ref)

	// Air gap.
	e.Reg.Close()
	e.URLs.Close()
	for ref := range refs {
		runTool(t, crane, "validate", "--insecure", "--remote", ref)
		out := filepath.Join(dir, "skopeo-"+strings.ReplaceAll(filepath.Base(ref), ":", "-"))
		cmd := exec.Command(skopeo, "--override-os", "windows", "copy", "--src-tls-verify=false", "docker://"+ref, "dir:"+out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("skopeo copy %s with the upstream gone: %v\n%s", ref, err, b)
			continue
		}
		if strings.Contains(ref, ":"+fixture.SingleTag) {
			for _, d := range e.Foreign[:2] {
				if _, err := os.Stat(filepath.Join(out, d.Hex)); err != nil {
					t.Errorf("skopeo got no foreign blob %s through the mirror: %v", d, err)
				}
			}
		}
	}
}

// TestMirrorFlags: mirror flags that cannot work are bad usage (exit 2),
// naming the flag, and the password never shows.
func TestMirrorFlags(t *testing.T) {
	t.Setenv(proxyPasswordEnv, "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--proxy-ttl", "1m"}, "--proxy-ttl needs --proxy"},
		{[]string{"--foreign-allow", "x"}, "--foreign-allow needs --proxy"},
		{[]string{"--proxy", "ftp://example.com"}, "http(s)://HOST"},
		{[]string{"--proxy", "https://u:hunter2@example.com"}, "ferry login"},
		{[]string{"--proxy", "a=https://a.example", "--proxy", "a=https://b.example"}, "given twice"},
		{[]string{"--proxy", "https://a.example", "--proxy-ttl", "-1s"}, "negative"},
		{[]string{"--proxy", "https://a.example", "--proxy-foreign", "include"}, "keep or localize"},
		{[]string{"--proxy", "https://a.example", "--proxy-username", "bob"}, proxyPasswordEnv},
		{[]string{"--proxy", "https://a.example", "--proxy", "https://b.example", "--proxy-username", "bob"}, "one --proxy"},
		{[]string{"--proxy", "https://a.example", "--foreign-allow", "("}, "regular expression"},
	} {
		_, stderr, code := run(t, append([]string{"serve", "--addr", "127.0.0.1:0", "--root", filepath.Join(t.TempDir(), "d")}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "hunter2") {
			t.Errorf("serve %v: exit %d, want 2 naming %q: %s", c.args, code, c.want, stderr)
		}
	}
}
