package cli

import (
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

func TestVerifyAirgap(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	dst := fixture.NewRegistry(t)
	src := e.Reg.Ref(fixture.Repo, fixture.IndexTag)
	if _, stderr, code := run(t, "copy", "--foreign", "include", "--foreign-allow", allowLoopback, src, dst.Ref("included", "v1")); code != 0 {
		t.Fatalf("copy: exit %d: %s", code, stderr)
	}
	// Every blob is there, so plain verify passes; --airgap names each
	// descriptor that still points outside.
	if _, stderr, code := run(t, "verify", dst.Ref("included", "v1")); code != 0 {
		t.Fatalf("verify: exit %d: %s", code, stderr)
	}
	out, _, code := run(t, "verify", "--airgap", dst.Ref("included", "v1"))
	if code != 1 {
		t.Fatalf("verify --airgap of an included copy: exit %d, want 1\n%s", code, out)
	}
	for _, f := range e.Foreign {
		if !strings.Contains(out, f.String()) {
			t.Errorf("foreign layer %s not named:\n%s", f, out)
		}
	}
	if n := strings.Count(out, "not-airgapped"); n != len(e.Foreign) {
		t.Errorf("%d not-airgapped findings, want %d:\n%s", n, len(e.Foreign), out)
	}
	if !strings.Contains(out, "/fwlink") {
		t.Errorf("the urls are not named:\n%s", out)
	}
	// A localized copy passes.
	if _, stderr, code := run(t, "copy", "--foreign", "localize", "--foreign-allow", allowLoopback, src, dst.Ref("localized", "v1")); code != 0 {
		t.Fatalf("copy: exit %d: %s", code, stderr)
	}
	if out, stderr, code := run(t, "verify", "--airgap", dst.Ref("localized", "v1")); code != 0 {
		t.Errorf("verify --airgap of a localized copy: exit %d\n%s%s", code, out, stderr)
	}
}
