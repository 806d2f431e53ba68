package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

// TestOutputForScripts: what scripts read (issue 18 item 16): inspect
// --json; copy --json's error object; "1 problem"; one count of
// manifests in copy and verify; no line ending in spaces.
func TestOutputForScripts(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	index := e.Reg.Ref(fixture.Repo, fixture.IndexTag)

	out, stderr, code := run(t, "inspect", "--json", index)
	var img struct {
		Reference  string
		Descriptor struct{ Digest string }
		Manifests  []struct {
			Platform string
			Layers   []struct {
				Foreign    bool
				Descriptor struct{ URLs []string }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &img); code != 0 || err != nil {
		t.Fatalf("inspect --json: exit %d, %v: %q %s", code, err, out, stderr)
	}
	if img.Reference != index || img.Descriptor.Digest != e.Index.String() || len(img.Manifests) != 2 ||
		!img.Manifests[0].Layers[0].Foreign || len(img.Manifests[0].Layers[0].Descriptor.URLs) == 0 {
		t.Errorf("inspect --json: %+v", img)
	}
	out, _, _ = run(t, "inspect", index)
	noTrailingSpaces(t, "inspect", out)

	// copy --json: a summary, or on failure an error object.
	dst := fixture.NewRegistry(t)
	out, _, code = run(t, "copy", "--json", index, dst.Ref("app", "v1"))
	var res struct{ Manifests int }
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil {
		t.Fatalf("copy --json: exit %d, %v: %q", code, err, out)
	}
	out, _, code = run(t, "copy", "--json", e.Reg.Ref(fixture.Repo, "no-such-tag"), dst.Ref("app", "v2"))
	var fail struct {
		Error    string
		ExitCode int
	}
	if err := json.Unmarshal([]byte(out), &fail); code != 1 || err != nil || fail.ExitCode != 1 || !strings.Contains(fail.Error, "no-such-tag") {
		t.Errorf("failed copy --json: exit %d, %v: %q", code, err, out)
	}

	// verify counts what copy counts: manifests and indexes.
	out, _, code = run(t, "verify", "--json", dst.Ref("app", "v1"))
	var rep struct{ Manifests int }
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil || rep.Manifests != res.Manifests || rep.Manifests != 3 {
		t.Errorf("verify --json counts %d manifests (exit %d, %v), copy %d; want 3 for an index of two", rep.Manifests, code, err, res.Manifests)
	}
	out, _, _ = run(t, "verify", dst.Ref("app", "v1"))
	if !strings.Contains(out, ": 3 manifests;") {
		t.Errorf("verify: %q", out)
	}

	// One problem is "1 problem", and the table has no trailing spaces.
	layout := t.TempDir()
	if _, stderr, code := run(t, "copy", "--foreign-allow", allowLoopback, e.Reg.Ref(fixture.Repo, fixture.SingleTag), "oci:"+layout+":v1"); code != 0 {
		t.Fatalf("copy: exit %d: %s", code, stderr)
	}
	if err := os.Remove(filepath.Join(layout, "blobs/sha256", e.Blobs[0].Hex)); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = run(t, "verify", "oci:"+layout+":v1")
	if code != 1 || !strings.Contains(stderr, ": 1 problem\n") {
		t.Errorf("verify with one missing blob: exit %d: %s", code, stderr)
	}
	noTrailingSpaces(t, "verify", out)
}

func noTrailingSpaces(t *testing.T, what, out string) {
	t.Helper()
	for i, l := range strings.Split(out, "\n") {
		if strings.TrimRight(l, " \t") != l {
			t.Errorf("%s: line %d ends in spaces: %q", what, i+1, l)
		}
	}
}
