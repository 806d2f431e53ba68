package cli

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// serveArgs runs ferry serve with exactly args and returns the URL it
// prints on stdout and what it wrote to stderr so far; it stops when the
// test ends.
func serveArgs(t *testing.T, args ...string) (url string, stderr *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	stderr = &syncBuffer{}
	root := NewRootCmd(&out, stderr)
	root.SetArgs(append([]string{"serve"}, args...))
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve exited with %v", err)
		}
	})
	for i := 0; i < 200 && url == ""; i++ {
		time.Sleep(20 * time.Millisecond)
		url = strings.TrimSpace(out.String())
	}
	if url == "" {
		t.Fatalf("serve %v printed no URL (stderr %q)", args, stderr.String())
	}
	return url, stderr
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeConfigAddr: --config's http.addr and log.formatter count unless
// --addr / --log-format are given (issue 18 item 7).
func TestServeConfigAddr(t *testing.T) {
	dir := t.TempDir()
	fileAddr := freeAddr(t)
	cfg := filepath.Join(dir, "config.yml")
	os.WriteFile(cfg, []byte(`version: 0.1
log:
  level: debug
  formatter: json
storage:
  filesystem:
    rootdirectory: `+filepath.Join(dir, "data")+`
http:
  addr: `+fileAddr+`
`), 0o644)
	url, stderr := serveArgs(t, "--config", cfg)
	if url != "http://"+fileAddr {
		t.Fatalf("serve --config printed %s, want the file's http.addr %s", url, fileAddr)
	}
	resp, err := http.Head(url + "/v2/app/manifests/missing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var logged bool
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.HasPrefix(line, "{") {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) != nil {
				t.Errorf("log line not JSON: %q", line)
			}
			logged = true
		}
	}
	if !logged {
		t.Errorf("the file's log.formatter json and level debug did not count: %q", stderr.String())
	}

	// A flag given wins over the file.
	flagAddr := freeAddr(t)
	dir2 := t.TempDir()
	cfg2 := filepath.Join(dir2, "config.yml")
	os.WriteFile(cfg2, []byte("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: "+filepath.Join(dir2, "data")+"\nhttp:\n  addr: "+freeAddr(t)+"\n"), 0o644)
	if url, _ := serveArgs(t, "--config", cfg2, "--addr", flagAddr, "--log-format", "text"); url != "http://"+flagAddr {
		t.Errorf("serve --config --addr %s printed %s", flagAddr, url)
	}
}

// TestServeRefusesPlainAuthOffLoopback: --htpasswd on 0.0.0.0 without TLS
// is a usage error naming the way out; with --tls-terminated-by-proxy it
// serves, printing URLs that work rather than http://0.0.0.0:PORT
// (issue 18 item 2).
func TestServeRefusesPlainAuthOffLoopback(t *testing.T) {
	dir := t.TempDir()
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	htpasswd := filepath.Join(dir, "htpasswd")
	os.WriteFile(htpasswd, []byte("admin:"+string(hash)+"\n"), 0o600)
	stdout, stderr, code := run(t, "serve", "--addr", "0.0.0.0:0", "--root", filepath.Join(dir, "data"), "--htpasswd", htpasswd)
	if code != 2 || stdout != "" || !strings.Contains(stderr, "--tls-terminated-by-proxy") || !strings.Contains(stderr, "clear text") {
		t.Errorf("serve --htpasswd on 0.0.0.0 without TLS: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	url, errb := serveArgs(t, "--addr", "0.0.0.0:0", "--root", filepath.Join(dir, "data"), "--htpasswd", htpasswd, "--tls-terminated-by-proxy")
	if !strings.HasPrefix(url, "http://127.0.0.1:") || strings.Contains(errb.String(), "0.0.0.0:") && !strings.Contains(errb.String(), "listening on every address") {
		t.Errorf("serve on 0.0.0.0 printed %s, stderr %q", url, errb.String())
	}
	resp, err := http.Get(url + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET %s/v2/ without credentials: %s, want 401", url, resp.Status)
	}
}
