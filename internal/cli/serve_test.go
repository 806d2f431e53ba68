package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/fixture"
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

func TestServeThenCopyAndPull(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	root := NewRootCmd(&out, &errb)
	root.SetArgs([]string{"serve", "--addr", "127.0.0.1:0", "--root", filepath.Join(t.TempDir(), "data")})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	var url string
	for i := 0; i < 100 && url == ""; i++ {
		time.Sleep(20 * time.Millisecond)
		url = strings.TrimSpace(out.String())
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("serve printed %q (stderr %q)", url, errb.String())
	}
	host := strings.TrimPrefix(url, "http://")
	// keep: the default serve configuration accepts https foreign URLs but
	// the fixture's are http, so keep is refused with an explanation, and
	// include works.
	_, stderr, code := run(t, "copy", e.Reg.Ref("windows/servercore", "ltsc"), host+"/servercore:ltsc")
	if code != 1 || !strings.Contains(stderr, "foreign-urls-allow") {
		t.Errorf("keep into default serve: exit %d, %s", code, stderr)
	}
	_, stderr, code = run(t, "copy", "--foreign", "include", "--foreign-allow", allowLoopback, e.Reg.Ref("windows/servercore", "ltsc"), host+"/servercore:ltsc")
	if code == 0 {
		t.Errorf("include keeps the http urls, which the default serve refuses; exit 0")
	}
	out2, stderr, code := run(t, "copy", "--foreign", "localize", "--foreign-allow", allowLoopback, e.Reg.Ref("windows/servercore", "ltsc"), host+"/servercore:ltsc")
	if code != 0 {
		t.Fatalf("localize into serve: exit %d, %s", code, stderr)
	}
	// Pull it back into another registry: every blob is there now.
	back := fixture.NewRegistry(t)
	if _, stderr, code = run(t, "copy", host+"/servercore:ltsc", back.Ref("back", "ltsc")); code != 0 {
		t.Fatalf("pull back: exit %d, %s", code, stderr)
	}
	_, _, d := back.Manifest(t, "back", "ltsc")
	if !strings.Contains(out2, d.String()) {
		t.Errorf("pulled-back digest %s differs from the pushed one %q", d, out2)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve exited with %v", err)
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
