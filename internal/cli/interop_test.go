package cli

import (
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

// TestSkopeoReadsFerryLayout checks that a layout ferry writes is one
// skopeo reads: inspect shows the same digest, and skopeo copies it into
// a layout of its own that ferry reads back with the same digest.
//
// The image is OCI-typed: skopeo 1.9 (Debian 12) ignores index.json entries
// with Docker media types, so a Docker schema2 image in a layout is not
// readable by it without conversion (open in the local-formats issue).
func TestSkopeoReadsFerryLayout(t *testing.T) {
	skopeo := needSkopeo(t)
	reg := fixture.NewRegistry(t)
	urls := fixture.NewURLServer(t)
	img := urls.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.20348.1", ForeignLayers: 2, Layers: 1, Seed: 3, OCI: true})
	id := reg.Push(t, "oci/win", "v1", img)
	dir := t.TempDir()
	if _, stderr, code := run(t, "copy", "--foreign-allow", allowLoopback, reg.Ref("oci/win", "v1"), "oci:"+dir+"/ferry:v1"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	out, err := exec.Command(skopeo, "inspect", "--raw", "oci:"+dir+"/ferry:v1").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("skopeo inspect: %v: %s", err, ee.Stderr)
		}
		t.Fatalf("skopeo inspect: %v", err)
	}
	var m struct{ Layers []struct{ MediaType string } }
	if err := json.Unmarshal(out, &m); err != nil || len(m.Layers) != 3 {
		t.Fatalf("skopeo read %q: %v", out, err)
	}
	// skopeo copies the layout, foreign layers included, into its own.
	cp := exec.Command(skopeo, "copy", "--preserve-digests", "oci:"+dir+"/ferry:v1", "oci:"+dir+"/skopeo:v1")
	if b, err := cp.CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, b)
	}
	got, stderr, code := run(t, "digest", "oci:"+dir+"/skopeo:v1")
	if code != 0 || strings.TrimSpace(got) != id.String() {
		t.Errorf("ferry reading skopeo's layout: exit %d, %q, want %s (%s)", code, got, id, stderr)
	}
	// skopeo leaves non-distributable layers out of its layout; ferry
	// fetches them from their urls when it pushes with include.
	dst := fixture.NewRegistry(t)
	if _, stderr, code := run(t, "copy", "--foreign", "include", "--foreign-allow", allowLoopback, "oci:"+dir+"/skopeo:v1", dst.Ref("from-skopeo", "v1")); code != 0 {
		t.Fatalf("push skopeo's layout: exit %d: %s", code, stderr)
	}
	if _, _, d := dst.Manifest(t, "from-skopeo", "v1"); d != id {
		t.Errorf("digest %s, want %s", d, id)
	}
}
