package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/server"
)

// abandonUpload begins an upload of size bytes into repo on a ferry serve
// of root and leaves it unfinished, as a killed push does.
func abandonUpload(t *testing.T, root, repo string, size int) {
	t.Helper()
	s, err := server.Start(context.Background(), "127.0.0.1:0", server.WithRoot(root))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	resp, err := http.Post(s.URL+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if strings.HasPrefix(loc, "/") {
		loc = s.URL + loc
	}
	req, _ := http.NewRequest(http.MethodPatch, loc, bytes.NewReader(bytes.Repeat([]byte("u"), size)))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PATCH: %s", resp.Status)
	}
}

// TestStorageUploads: fsck reports unfinished uploads with their size (and
// stays ok), gc removes those older than --upload-age (issue 18 item 1).
func TestStorageUploads(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	root := t.TempDir()
	if _, stderr, code := run(t, "storage", "import", "--root", root, e.Reg.Ref(fixture.Repo, fixture.SingleTag), "app:v1"); code != 0 {
		t.Fatalf("import: %s", stderr)
	}
	abandonUpload(t, root, "app", 3000)
	uploads := filepath.Join(root, "docker", "registry", "v2", "repositories", "app", "_uploads")

	out, stderr, code := run(t, "storage", "fsck", "--root", root)
	if code != 0 || !strings.Contains(out, "1 unfinished uploads hold 2.9 KiB") || !strings.Contains(out, "  app  ") {
		t.Errorf("fsck with an abandoned upload: exit %d, %s%s", code, out, stderr)
	}
	out, _, _ = run(t, "storage", "fsck", "--root", root, "--json")
	var rep struct {
		Uploads []struct {
			Repository string
			Size       int64
		}
		UploadBytes int64
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Uploads) != 1 || rep.Uploads[0].Size != 3000 || rep.UploadBytes != 3000 {
		t.Errorf("fsck --json: %v %s", err, out)
	}

	// The default age spares an upload begun a moment ago.
	out, stderr, code = run(t, "storage", "gc", "--root", root)
	if code != 0 || !strings.Contains(out, "and 0 uploads") {
		t.Errorf("gc: exit %d, %s%s", code, out, stderr)
	}
	out, _, code = run(t, "storage", "gc", "--root", root, "--upload-age", "0", "--dry-run")
	if entries, _ := os.ReadDir(uploads); code != 0 || len(entries) != 1 || !strings.Contains(out, "would remove upload") || !strings.Contains(out, "1 uploads, freeing 2.9 KiB") {
		t.Errorf("gc --dry-run --upload-age 0: exit %d, %d uploads left, %s", code, len(entries), out)
	}
	out, stderr, code = run(t, "storage", "gc", "--root", root, "--upload-age", "0")
	if code != 0 || !strings.Contains(out, "removed upload") || !strings.Contains(out, "and 1 uploads, freed 2.9 KiB") {
		t.Errorf("gc --upload-age 0: exit %d, %s%s", code, out, stderr)
	}
	if entries, _ := os.ReadDir(uploads); len(entries) != 0 {
		t.Errorf("gc left the upload on disk: %v", entries)
	}
	if _, _, code := run(t, "storage", "gc", "--root", root, "--upload-age", "-1h"); code != 2 {
		t.Errorf("gc --upload-age -1h: exit %d, want 2", code)
	}
	out, _, code = run(t, "storage", "fsck", "--root", root)
	if code != 0 || strings.Contains(out, "unfinished") {
		t.Errorf("fsck after gc: exit %d, %s", code, out)
	}
}
