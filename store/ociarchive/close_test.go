package ociarchive

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/blob"
)

// TestCloseFailureNamesArchive: when finishing the archive fails (here its
// temporary file is already closed, so every write fails), Close's error
// names the archive the user asked for, not only the hidden temporary
// file, and nothing is left behind.
func TestCloseFailureNamesArchive(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.tar")
	tg, err := Create(p, "v1")
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}`)
	desc := blob.DescriptorOf(raw, types.OCIManifestSchema1)
	if err := tg.Tag(context.Background(), desc, raw); err != nil {
		t.Fatal(err)
	}
	tg.f.Close() // every later write fails
	err = tg.Close()
	if err == nil {
		t.Fatal("Close succeeded on a closed temporary file")
	}
	if !strings.Contains(err.Error(), "oci-archive:"+p) {
		t.Errorf("Close error %q does not name the archive %s", err, p)
	}
	if !errors.Is(err, os.ErrClosed) {
		t.Errorf("Close error %q does not wrap the cause", err)
	}
	if _, serr := os.Stat(p); !errors.Is(serr, fs.ErrNotExist) {
		t.Errorf("archive %s exists after a failed Close: %v", p, serr)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}
