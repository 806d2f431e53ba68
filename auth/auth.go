// Package auth stores and removes registry credentials the way the Docker
// CLI does — in config.json under DOCKER_CONFIG (default ~/.docker, on
// Windows %USERPROFILE%\.docker), or in the credential helper it names —
// so that docker, crane, regctl and ferry share one login.
package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferry-dev/ferry/store/registry"
)

// ConfigDir returns the directory holding Docker's config.json, as the
// Docker CLI finds it: DOCKER_CONFIG when set, else .docker in the user's
// home directory (%USERPROFILE%\.docker on Windows, $HOME/.docker
// elsewhere). Unlike docker/cli's config.Dir, which keeps its first answer
// for the life of the process, it reads the environment on every call.
func ConfigDir() string {
	if d := os.Getenv(config.EnvOverrideConfigDir); d != "" {
		return d
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		return filepath.Join(home, ".docker")
	}
	return config.Dir()
}

// ErrEmptyCredentials means a user name or password was missing.
var ErrEmptyCredentials = errors.New("user name and password are required")

// serverAddress is the key Docker files credentials under: Docker Hub's
// legacy URL for Docker Hub, the host otherwise.
func serverAddress(reg name.Registry) string {
	if reg.RegistryStr() == name.DefaultRegistry {
		return authn.DefaultAuthKey
	}
	return reg.RegistryStr()
}

// Login checks user and password against host (a GET /v2/ with them) and,
// when the registry accepts them, stores them. The password never appears
// in errors.
func Login(ctx context.Context, host, user, password string, opts ...registry.Option) error {
	if user == "" || password == "" {
		return ErrEmptyCredentials
	}
	reg, err := registry.NewRegistry(strings.TrimPrefix(host, "docker://"), false)
	if err != nil {
		return fmt.Errorf("login: %q is not a registry host: %w", host, err)
	}
	ropts := append([]registry.Option{registry.WithAuth(authn.FromConfig(authn.AuthConfig{Username: user, Password: password}))}, opts...)
	if err := registry.Ping(ctx, reg, ropts...); err != nil {
		return fmt.Errorf("login to %s as %s: %w", reg, user, redact(err, password))
	}
	dir := ConfigDir()
	cf, err := config.Load(dir)
	if err != nil {
		return fmt.Errorf("login: read docker config in %s: %w", dir, err)
	}
	addr := serverAddress(reg)
	if err := cf.GetCredentialsStore(addr).Store(types.AuthConfig{ServerAddress: addr, Username: user, Password: password}); err != nil {
		return fmt.Errorf("login: store credentials for %s: %w", addr, redact(err, password))
	}
	if err := cf.Save(); err != nil {
		return fmt.Errorf("login: save %s: %w", cf.Filename, err)
	}
	return nil
}

// ErrNotLoggedIn means Logout found no credentials stored for the host;
// docker logout says so and succeeds, and so does ferry logout.
var ErrNotLoggedIn = errors.New("not logged in to")

// Logout removes the credentials stored for host. When none are stored
// its error wraps ErrNotLoggedIn.
func Logout(host string) error {
	reg, err := registry.NewRegistry(strings.TrimPrefix(host, "docker://"), false)
	if err != nil {
		return fmt.Errorf("logout: %q is not a registry host: %w", host, err)
	}
	dir := ConfigDir()
	cf, err := config.Load(dir)
	if err != nil {
		return fmt.Errorf("logout: read docker config in %s: %w", dir, err)
	}
	addr := serverAddress(reg)
	if _, ok := cf.AuthConfigs[addr]; !ok && cf.CredentialsStore == "" && cf.CredentialHelpers[addr] == "" {
		return fmt.Errorf("logout: %w %s", ErrNotLoggedIn, addr)
	}
	if err := cf.GetCredentialsStore(addr).Erase(addr); err != nil {
		return fmt.Errorf("logout: erase credentials for %s: %w", addr, err)
	}
	return cf.Save()
}

// redactedError hides a secret in an error's text while keeping it
// inspectable with errors.Is and errors.As.
type redactedError struct {
	err    error
	secret string
}

func (e *redactedError) Error() string {
	return strings.ReplaceAll(e.err.Error(), e.secret, "<redacted>")
}
func (e *redactedError) Unwrap() error { return e.err }

func redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &redactedError{err: err, secret: secret}
}
