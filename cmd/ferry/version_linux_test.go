package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// buildFromClone builds ferry from a fresh clone of this checkout's
// commit, with VCS stamping on (the Go toolchain stamps only inside a
// repository whose .git is a directory, so not in a git worktree), as a
// release or a user's go build does. It returns the binary and the commit.
func buildFromClone(t *testing.T) (string, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds ferry from a clone")
	}
	git := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git %s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
	commit := git(".", "rev-parse", "HEAD")
	clone := filepath.Join(t.TempDir(), "src")
	git(".", "clone", "-q", "--no-checkout", git(".", "rev-parse", "--show-toplevel"), clone)
	git(clone, "checkout", "-q", commit)
	bin := filepath.Join(t.TempDir(), "ferry")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./cmd/ferry")
	build.Dir = clone
	build.Env = append(os.Environ(), "GOFLAGS=")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatal(err)
	}
	return bin, commit
}

// TestVersionOfABuild: a go build binary knows its version, commit and Go
// version (ferry version --json, ferry --version), and its registry
// requests carry User-Agent ferry/VERSION (os/arch).
func TestVersionOfABuild(t *testing.T) {
	bin, commit := buildFromClone(t)
	out, err := exec.Command(bin, "version", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var in struct {
		Version, Commit, Date, GoVersion, Platform string
		Modified                                   bool
	}
	if err := json.Unmarshal(out, &in); err != nil {
		t.Fatalf("version --json: %v\n%s", err, out)
	}
	if in.Version == "" || in.Version == "devel" || in.Commit != commit || in.GoVersion != runtime.Version() || in.Date == "" || in.Modified {
		t.Errorf("version --json = %+v, want a module version, commit %s, %s, a date and no modification", in, commit, runtime.Version())
	}
	if !strings.Contains(in.Version, commit[:12]) && !strings.HasPrefix(in.Version, "v") {
		t.Errorf("version %q is neither a tag nor a pseudo-version of %s", in.Version, commit)
	}
	line, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(line), "ferry "+in.Version+" (commit "+commit) {
		t.Errorf("ferry --version = %q", line)
	}

	var mu sync.Mutex
	var agents []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		agents = append(agents, r.UserAgent())
		mu.Unlock()
		if r.URL.Path == "/v2/" {
			return
		}
		http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no"}]}`, http.StatusNotFound)
	}))
	t.Cleanup(srv.Close)
	exec.Command(bin, "digest", strings.TrimPrefix(srv.URL, "http://")+"/team/app:v1").Run()
	want := "ferry/" + in.Version + " (" + runtime.GOOS + "/" + runtime.GOARCH + ")"
	mu.Lock()
	defer mu.Unlock()
	if len(agents) == 0 {
		t.Fatal("the registry saw no request")
	}
	for _, ua := range agents {
		if !strings.HasPrefix(ua, want) {
			t.Errorf("User-Agent %q, want %q first", ua, want)
		}
	}
}
