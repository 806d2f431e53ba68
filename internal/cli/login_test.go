package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
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
	if !strings.Contains(stderr, "hint: log in with 'ferry login "+private.Host+" ") {
		t.Errorf("a 401 does not suggest ferry login %s: %s", private.Host, stderr)
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
	if _, stderr, code = run(t, "tags", private.Host+"/mirror/app"); code != 1 || !strings.Contains(stderr, "ferry login "+private.Host) {
		t.Errorf("after logout: exit %d, want 1 with a hint at ferry login: %s", code, stderr)
	}
	// Logging out again: nothing to remove, as docker logout, exit 0.
	if _, stderr, code = run(t, "logout", private.Host); code != 0 || !strings.Contains(stderr, "Not logged in to "+private.Host) {
		t.Errorf("second logout: exit %d, want 0: %s", code, stderr)
	}
}

// TestUnknownCommandIsUsage: a mistyped command is bad input, exit 2 as the
// README promises, with cobra's suggestion.
func TestUnknownCommandIsUsage(t *testing.T) {
	for _, args := range [][]string{{"cpoy", "a", "b"}, {"bundle", "craete", "x"}} {
		_, stderr, code := run(t, args...)
		if code != 2 || !strings.Contains(stderr, "unknown command") || !strings.Contains(strings.ToLower(stderr), "did you mean") {
			t.Errorf("%v: exit %d, want 2: %s", args, code, stderr)
		}
	}
	if out, _, code := run(t, "bundle"); code != 0 || !strings.Contains(out, "Available Commands") {
		t.Errorf("bundle alone: exit %d, want its help: %s", code, out)
	}
}

// TestDeleteDisabledHint: deleting on a registry that does not allow it
// names ferry serve's --delete.
func TestDeleteDisabledHint(t *testing.T) {
	reg := fixture.NewRegistry(t, server.WithDelete(false))
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "app", "v1", img)
	_, stderr, code := run(t, "delete", reg.Ref("app", "v1"))
	if code != 1 || !strings.Contains(stderr, "hint:") || !strings.Contains(stderr, "--delete") {
		t.Errorf("exit %d, want 1 with a hint naming --delete: %s", code, stderr)
	}
}
