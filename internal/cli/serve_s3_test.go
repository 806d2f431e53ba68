package cli

import (
	"strings"
	"testing"
)

// TestServeS3FlagsRefused: the --s3-* flags describe the storage, so
// --root and --config go without them; an endpoint needs a bucket; S3
// needs http.secret. None of these reach the network.
func TestServeS3FlagsRefused(t *testing.T) {
	t.Setenv("FERRY_HTTP_SECRET", "")
	t.Setenv("REGISTRY_HTTP_SECRET", "")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--s3-bucket", "b", "--root", t.TempDir()}, 2, "give one"},
		{[]string{"--s3-endpoint", "http://127.0.0.1:1"}, 2, "--s3-bucket"},
		{[]string{"--s3-bucket", "b", "--s3-endpoint", "http://127.0.0.1:1"}, 1, "FERRY_HTTP_SECRET"},
	} {
		_, stderr, code := run(t, append([]string{"serve", "--addr", "127.0.0.1:0"}, c.args...)...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("serve %v: exit %d, want %d naming %q: %s", c.args, code, c.code, c.want, stderr)
		}
	}
}

// TestStorageGCFlags: --root and --config exclude each other; a
// configuration holding nothing (inmemory) is refused.
func TestStorageGCFlags(t *testing.T) {
	if _, stderr, code := run(t, "storage", "gc", "--root", t.TempDir(), "--config", "x.yml"); code != 2 || !strings.Contains(stderr, "not both") {
		t.Errorf("--root and --config: exit %d: %s", code, stderr)
	}
}
