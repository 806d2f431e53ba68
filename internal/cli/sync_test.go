package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/syncer"
)

// syncFile writes a sync file selecting from the Microsoft-like env's
// registry by list and by regex, with ferry keys skopeo ignores.
func syncFile(t *testing.T, e *fixture.Env, extra string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sync.yaml")
	body := e.Reg.Host + `:
  tls-verify: false
  images:
    ` + fixture.Repo + `: [` + fixture.IndexTag + extra + `]
  images-by-tag-regex:
    ` + fixture.Repo + `2: ^ltsc20
  keep-ubr: 1
  repositories:
    ` + fixture.Repo + `:
      foreign: include
`
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSyncCommand(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	e.Reg.Push(t, fixture.Repo+"2", fixture.SingleTag, e.Single)
	dst := fixture.NewRegistry(t)
	file := syncFile(t, e, "")
	out, stderr, code := run(t, "sync", "--json", "--foreign-allow", allowLoopback, file, dst.Host+"/mirror")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep syncer.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if rep.Totals.Images != 2 || rep.Totals.Copied != 2 || rep.Totals.Bytes == 0 {
		t.Errorf("totals %+v", rep.Totals)
	}
	if _, _, d := dst.Manifest(t, "mirror/"+fixture.Repo, fixture.IndexTag); d != e.Index {
		t.Errorf("index landed as %s, want %s", d, e.Index)
	}
	for _, f := range e.Foreign {
		if !dst.HasBlob(t, "mirror/"+fixture.Repo, f) {
			t.Errorf("foreign blob %s missing although the repository says foreign: include", f)
		}
	}
	// Plain lines, one per image; the rerun skips both.
	out, stderr, code = run(t, "sync", file, dst.Host+"/mirror")
	if code != 0 || strings.Count(out, "skipped ") != 2 {
		t.Errorf("rerun: exit %d, %q %s", code, out, stderr)
	}
	// A missing tag: the rest synced, exit 1, the missing one named.
	out, stderr, code = run(t, "sync", "--foreign-allow", allowLoopback, syncFile(t, e, ", gone"), dst.Host+"/other")
	if code != 1 || !strings.Contains(stderr, fixture.Repo+":gone") || !strings.Contains(out, "copied  "+e.Reg.Host+"/"+fixture.Repo+":"+fixture.IndexTag) {
		t.Errorf("missing tag: exit %d\nstdout %s\nstderr %s", code, out, stderr)
	}
	// --dry-run writes nothing.
	before := dst.Count("PUT", "") + dst.Count("POST", "")
	out, _, code = run(t, "sync", "--dry-run", file, dst.Host+"/dry")
	if code != 0 || strings.Count(out, "copy ") != 2 || dst.Count("PUT", "")+dst.Count("POST", "") != before {
		t.Errorf("dry run: exit %d, %q, or it wrote", code, out)
	}
}

func TestSyncCommandBadFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(p, []byte("reg.example:\n  images:\n    busybox: latest\n  colour: blue\n"), 0o644)
	_, stderr, code := run(t, "sync", p, "localhost:5000")
	if code != 2 || !strings.Contains(stderr, "bad.yaml:3:14") {
		t.Errorf("exit %d, %s: want 2 with line and column", code, stderr)
	}
	os.WriteFile(p, []byte("reg.example:\n  images:\n    busybox: []\n  colour: blue\n"), 0o644)
	_, stderr, code = run(t, "sync", "--dry-run", p, "oci-archive:")
	if code != 2 || !strings.Contains(stderr, `bad.yaml:4:3: reg.example: unknown key "colour"`) {
		t.Errorf("exit %d, %s: want the unknown key warned about and the destination refused", code, stderr)
	}
}

// TestSkopeoReadsSyncFile checks that skopeo sync takes the file ferry
// sync reads — ferry's keys included — and plans the same images.
func TestSkopeoReadsSyncFile(t *testing.T) {
	skopeo := needSkopeo(t)
	e := fixture.MicrosoftLike(t)
	e.Reg.Push(t, fixture.Repo+"2", fixture.SingleTag, e.Single)
	dst := fixture.NewRegistry(t)
	cmd := exec.Command(skopeo, "--insecure-policy", "sync", "--dry-run", "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false", syncFile(t, e, ""), dst.Host+"/skopeo")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo sync: %v\n%s", err, b)
	}
	// skopeo plans the same two images (flattening the repository path,
	// which ferry keeps: docs/sync.md).
	if !strings.Contains(string(b), "Would have synced 2 images") || !strings.Contains(string(b), dst.Host+"/skopeo/servercore:"+fixture.IndexTag) {
		t.Errorf("skopeo sync planned otherwise:\n%s", b)
	}
	if dst.Count("PUT", "") != 0 {
		t.Error("skopeo's dry run wrote")
	}
}
