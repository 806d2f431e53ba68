package opener

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/regstorage/replicas"
)

// TestRefuseGC: gc on shared storage is refused while a replica accepts
// writes (stopped or not), and with no replica announced unless the
// caller says all are stopped; read-only replicas do not stop it.
func TestRefuseGC(t *testing.T) {
	writer := replicas.Marker{ID: "a", Host: "h1", PID: 1}
	reader := replicas.Marker{ID: "b", Host: "h2", PID: 2, ReadOnly: true}
	for _, tc := range []struct {
		name    string
		live    []replicas.Marker
		stopped bool
		refused bool
		writers int
	}{
		{"none announced", nil, false, true, 0},
		{"none announced, stopped", nil, true, false, 0},
		{"a writer", []replicas.Marker{writer, reader}, false, true, 1},
		{"a writer, stopped", []replicas.Marker{writer}, true, true, 1},
		{"read-only only", []replicas.Marker{reader}, false, false, 0},
	} {
		r := refuseGC("s3 bucket b", tc.live, tc.stopped)
		if (r != nil) != tc.refused {
			t.Errorf("%s: refused %v, want %v", tc.name, r != nil, tc.refused)
			continue
		}
		if r == nil {
			continue
		}
		var err error = r
		if len(r.Writers) != tc.writers || !errors.Is(err, ErrReplicasRunning) || !strings.Contains(r.Error(), "s3 bucket b") {
			t.Errorf("%s: %+v (%v): want %d writer(s), wrapping ErrReplicasRunning, naming the storage", tc.name, r, r, tc.writers)
		}
	}
}

// TestOpenGCRootLocalConfig: a configuration naming a filesystem root
// opens that root, locked like --root.
func TestOpenGCRootLocalConfig(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "docker", "registry", "v2", "repositories"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: "+filepath.ToSlash(root)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := OpenGCRoot(ctx, "", cfg, "test", false)
	if err != nil {
		t.Fatalf("OpenGCRoot on a filesystem configuration: %v", err)
	}
	defer r.Close()
	if r.Desc != "" || r.ReadOnlyReplicas != 0 {
		t.Errorf("a local root opened as shared storage: %+v", r)
	}
	if _, err := r.GC(ctx, true, false, DefaultUploadAge); err != nil {
		t.Errorf("GC --dry-run: %v", err)
	}
	if other, err := OpenGCRoot(ctx, root, "", "other", false); err == nil {
		other.Close()
		t.Error("a second OpenGCRoot of a locked root succeeded")
	}
}
