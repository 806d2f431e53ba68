package cli

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

// syncBuffer is a bytes.Buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe runs ferry serve in process with args and returns its host;
// the server stops when the test ends, whatever happened.
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	url, stderr := serveArgs(t, append([]string{"--addr", "127.0.0.1:0", "--root", filepath.Join(t.TempDir(), "data")}, args...)...)
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("serve printed %q (stderr %q)", url, stderr.String())
	}
	return strings.TrimPrefix(url, "http://")
}

// TestServeThenCopyAndPull copies a Windows image with foreign layers into
// ferry serve with keep, include and localize and pulls each back: keep
// and include keep the digest, include and localize hold every blob.
func TestServeThenCopyAndPull(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	src := e.Reg.Ref(fixture.Repo, fixture.IndexTag)
	// The default configuration accepts https foreign URLs only: the
	// fixture's are http, so keep is refused, at once (a 400, not a 500
	// the client would retry), with the server's reason and the fix named.
	host := startServe(t)
	start := time.Now()
	_, stderr, code := run(t, "copy", src, host+"/servercore:ltsc")
	if code != 1 || !strings.Contains(stderr, "foreign-urls-allow") || !strings.Contains(stderr, "is not allowed by this registry (allowed: ^https://") {
		t.Errorf("keep into default serve: exit %d, %s", code, stderr)
	}
	// A status 500, not the digits inside a digest or a port.
	if regexp.MustCompile(`\b500\b`).MatchString(stderr) || time.Since(start) > 5*time.Second {
		t.Errorf("keep into default serve took %v (retried?): %s", time.Since(start), stderr)
	}
	host = startServe(t, "--foreign-urls-allow", allowLoopback)
	for _, policy := range []string{"keep", "include", "localize"} {
		out, stderr, code := run(t, "copy", "--foreign", policy, "--foreign-allow", allowLoopback, src, host+"/servercore:"+policy)
		if code != 0 {
			t.Fatalf("%s into serve: exit %d, %s", policy, code, stderr)
		}
		// Pulling back without --foreign-allow, the loopback urls are
		// refused: with include, the foreign bytes can only come from
		// ferry serve itself.
		back := fixture.NewRegistry(t)
		backPolicy := map[string]string{"keep": "keep", "include": "include", "localize": "keep"}[policy]
		if _, stderr, code = run(t, "copy", "--foreign", backPolicy, host+"/servercore:"+policy, back.Ref("back", "ltsc")); code != 0 {
			t.Fatalf("%s: pull back: exit %d, %s", policy, code, stderr)
		}
		_, _, d := back.Manifest(t, "back", "ltsc")
		if !strings.Contains(out, d.String()) || (policy != "localize" && d != e.Index) {
			t.Errorf("%s: pulled-back digest %s, pushed %q, source %s", policy, d, out, e.Index)
		}
		for _, b := range e.Blobs {
			if !back.BlobDigestOK(t, "back", b) {
				t.Errorf("%s: blob %s missing after the round trip", policy, b)
			}
		}
		if policy == "include" {
			for _, b := range e.Foreign {
				if !back.HasBlob(t, "back", b) {
					t.Errorf("include: foreign blob %s not served by ferry serve", b)
				}
			}
		}
	}
}

func TestServePortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, stderr, code := run(t, "serve", "--addr", ln.Addr().String(), "--root", t.TempDir())
	if code != 1 || !strings.Contains(stderr, ln.Addr().String()) {
		t.Errorf("exit %d, %s", code, stderr)
	}
}

// TestServeBadInput: a root that holds other things, a root that is a
// file, a missing configuration file: exit 1 naming which.
func TestServeBadInput(t *testing.T) {
	dir := t.TempDir()
	notRoot := filepath.Join(dir, "photos")
	os.MkdirAll(notRoot, 0o755)
	os.WriteFile(filepath.Join(notRoot, "cat.jpg"), []byte("x"), 0o644)
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--root", notRoot}, "neither empty nor a registry storage root"},
		{[]string{"--root", file}, file},
		{[]string{"--config", filepath.Join(dir, "missing.yml")}, "missing.yml"},
	} {
		_, stderr, code := run(t, append([]string{"serve", "--addr", "127.0.0.1:0"}, c.args...)...)
		if code != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("serve %v: exit %d, want 1 naming %q: %s", c.args, code, c.want, stderr)
		}
	}
	if entries, _ := os.ReadDir(notRoot); len(entries) != 1 {
		t.Errorf("serve wrote into a directory it refused: %v", entries)
	}
}

// TestServeBadTLS: a certificate that cannot be loaded is an error at
// once, naming the file, before the URL is printed.
func TestServeBadTLS(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key.pem")
	os.WriteFile(key, []byte("not a key"), 0o600)
	missing := filepath.Join(dir, "nonexistent.pem")
	stdout, stderr, code := run(t, "serve", "--addr", "127.0.0.1:0", "--root", filepath.Join(dir, "data"), "--tls-cert", missing, "--tls-key", key)
	if code != 1 || !strings.Contains(stderr, missing) || strings.Contains(stderr, "serving registry") || stdout != "" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
