package server

import (
	"errors"
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
