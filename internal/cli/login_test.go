package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/server"
)

func runStdin(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	root := NewRootCmd(&out, &errb)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append([]string{"--progress", "none"}, args...))
	err := root.ExecuteContext(context.Background())
	printErr(&errb, err)
	return out.String(), errb.String(), ExitCode(err)
}

func TestLoginThenCopy(t *testing.T) {
	const secret = "s3cret-Pa55"
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("admin:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", filepath.Join(dir, "docker"))

	e := fixture.MicrosoftLike(t)
	private := fixture.NewRegistry(t, server.WithHTPasswd(htpasswd))
	dst := private.Ref("mirror/app", "v1")

	_, stderr, code := run(t, "copy", e.Reg.Ref("windows/servercore", "ltsc2019"), dst)
	if code != 1 || !strings.Contains(strings.ToLower(stderr), "unauthorized") {
		t.Fatalf("anonymous push: exit %d, %s", code, stderr)
	}
	_, stderr, code = runStdin(t, "wrong\n", "login", private.Host, "-u", "admin", "--password-stdin")
	if code != 1 || strings.Contains(stderr, "wrong") {
		t.Fatalf("bad password: exit %d, %s", code, stderr)
	}
	_, stderr, code = runStdin(t, secret+"\n", "login", private.Host, "-u", "admin", "--password-stdin")
	if code != 0 || strings.Contains(stderr, secret) {
		t.Fatalf("login: exit %d, %s", code, stderr)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "docker", "config.json"))
	if err != nil || !strings.Contains(string(cfg), private.Host) {
		t.Fatalf("config.json: %v %s", err, cfg)
	}
	out, stderr, code := run(t, "copy", e.Reg.Ref("windows/servercore", "ltsc2019"), dst)
	if code != 0 {
		t.Fatalf("copy after login: exit %d, %s", code, stderr)
	}
	if strings.Contains(out+stderr, secret) {
		t.Error("the password appeared in output")
	}
	if _, _, code = run(t, "logout", private.Host); code != 0 {
		t.Fatalf("logout: exit %d", code)
	}
	if _, _, code = run(t, "tags", private.Host+"/mirror/app"); code != 1 {
		t.Errorf("after logout: exit %d, want 1", code)
	}
}
