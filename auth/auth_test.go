package auth

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/server"
)

// homeVar is the variable the user's home directory comes from.
func homeVar() string {
	if runtime.GOOS == "windows" {
		return "USERPROFILE"
	}
	return "HOME"
}

func TestConfigDir(t *testing.T) {
	home := t.TempDir()
	t.Setenv(homeVar(), home)
	t.Setenv("DOCKER_CONFIG", "")
	if got, want := ConfigDir(), filepath.Join(home, ".docker"); got != want {
		t.Errorf("ConfigDir without DOCKER_CONFIG = %s, want %s", got, want)
	}
	other := filepath.Join(t.TempDir(), "cfg")
	t.Setenv("DOCKER_CONFIG", other)
	if got := ConfigDir(); got != other {
		t.Errorf("ConfigDir with DOCKER_CONFIG = %s, want %s", got, other)
	}
}

// TestLoginToUserProfile logs in with DOCKER_CONFIG unset: the
// credentials land in %USERPROFILE%\.docker\config.json on Windows
// ($HOME/.docker/config.json elsewhere), where the registry client's
// keychain finds them, and logout removes them.
func TestLoginToUserProfile(t *testing.T) {
	const user, secret = "admin", "pa55-Word"
	home := t.TempDir()
	t.Setenv(homeVar(), home)
	t.Setenv("DOCKER_CONFIG", "")
	hash, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := fixture.NewRegistry(t, server.WithHTPasswd(htpasswd))

	if err := Login(context.Background(), reg.Host, user, secret); err != nil {
		t.Fatalf("Login: %v", err)
	}
	cfgFile := filepath.Join(home, ".docker", "config.json")
	b, err := os.ReadFile(cfgFile)
	if err != nil || !strings.Contains(string(b), reg.Host) {
		t.Fatalf("%s after login: %v %s", cfgFile, err, b)
	}
	r, err := name.NewRegistry(reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	a, err := authn.DefaultKeychain.Resolve(r)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := a.Authorization(); err != nil || c.Username != user || c.Password != secret {
		t.Errorf("keychain credentials for %s: %+v, %v", reg.Host, c, err)
	}
	if err := Logout(reg.Host); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if b, _ := os.ReadFile(cfgFile); strings.Contains(string(b), reg.Host) {
		t.Errorf("%s still names %s after logout: %s", cfgFile, reg.Host, b)
	}
}
