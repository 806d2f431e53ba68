package scaleout

import (
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

// TestMirrorAcrossReplicas: ferry serve --proxy replicas on one bucket
// share one cache. What one replica pulled through, a foreign blob from
// its URL included, another serves with the upstream and the URL server
// gone.
func TestMirrorAcrossReplicas(t *testing.T) {
	needS3(t)
	e := fixture.MicrosoftLike(t)
	prefix := "/t-mirror-" + randomHex(6)
	cfg := filepath.Join(t.TempDir(), "mirror.yml")
	if err := os.WriteFile(cfg, []byte(Config(s3env, prefix, false)), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, 2, func(o *Options) {
		o.NoBalancer, o.Prefix = true, prefix
		o.ServeArgs = []string{"--config", cfg, "--proxy", e.Reg.URL, "--foreign-allow", `^http://127\.0\.0\.1:`}
	})
	blobs := []v1.Hash{e.Configs[0], e.Blobs[0], e.Foreign[0], e.Foreign[1]}
	if _, _, d := manifest(t, c.Replicas[0], fixture.Repo, fixture.SingleTag); d != e.SingleID {
		t.Fatalf("through replica 0: %s, want %s", d, e.SingleID)
	}
	for _, d := range blobs {
		if !blobOK(t, c.Replicas[0], fixture.Repo, d) {
			t.Errorf("blob %s not served through replica 0", d)
		}
	}
	e.Reg.Close()
	e.URLs.Close()
	for _, ident := range []string{fixture.SingleTag, e.SingleID.String()} {
		if _, _, d := manifest(t, c.Replicas[1], fixture.Repo, ident); d != e.SingleID {
			t.Errorf("replica 1, upstream gone, %s: %s, want %s", ident, d, e.SingleID)
		}
	}
	for _, d := range blobs {
		if !blobOK(t, c.Replicas[1], fixture.Repo, d) {
			t.Errorf("blob %s cached through replica 0 not served by replica 1", d)
		}
	}
}
