package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestS3ConfigurationNeedsSecret(t *testing.T) {
	s3 := WithS3(S3{Endpoint: "http://127.0.0.1:7480", Bucket: "registry"})
	if _, err := Configuration(s3); !errors.Is(err, ErrNoSecret) {
		t.Fatalf("S3 without a secret: err = %v, want ErrNoSecret", err)
	}
	cfg, err := Configuration(s3, WithSecret("shared"))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Storage.Parameters()
	if cfg.Storage.Type() != "s3" || p["bucket"] != "registry" || p["region"] != "us-east-1" || p["secure"] != false || p["forcepathstyle"] != true {
		t.Errorf("storage %v %v", cfg.Storage.Type(), p)
	}
	if _, ok := p["accesskey"]; ok {
		t.Errorf("credentials in the configuration: %v", p)
	}
	if cfg.HTTP.Secret != "shared" || cfg.Storage["redirect"]["disable"] != true {
		t.Errorf("secret %q, redirect %v", cfg.HTTP.Secret, cfg.Storage["redirect"])
	}
	// The filesystem keeps its random per-process default.
	if cfg, err := Configuration(WithRoot(t.TempDir())); err != nil || cfg.HTTP.Secret == "" {
		t.Errorf("filesystem: %v, secret %q", err, cfg.HTTP.Secret)
	}
}

func TestWithS3Refuses(t *testing.T) {
	for _, c := range []struct {
		s    S3
		want string
	}{
		{S3{Endpoint: "http://h:1"}, "bucket"},
		{S3{Bucket: "b"}, "region"},
		{S3{Bucket: "b", Endpoint: "127.0.0.1:7480"}, "http://127.0.0.1:7480"},
	} {
		if _, err := Configuration(WithS3(c.s), WithSecret("x")); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want one naming %q", c.s, err, c.want)
		}
	}
}

// TestConfigStorageErrorNamesS3Once: the S3 driver's error names its
// storage, and ConfigStorage does not name it again.
func TestConfigStorageErrorNamesS3Once(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yml")
	cfg := "version: 0.1\nstorage:\n  s3:\n    bucket: b\n    region: r\n    colour: red\n"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, _, err := ConfigStorage(context.Background(), path)
	if err == nil || strings.Count(err.Error(), "s3 storage:") != 1 || !strings.Contains(err.Error(), "unknown parameter(s) colour") {
		t.Errorf("err = %v, want one naming s3 storage once and the unknown parameter", err)
	}
}
