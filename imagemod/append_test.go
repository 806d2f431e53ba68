package imagemod

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferry-dev/ferry/store/ocilayout"
)

// TestAppendInvalidArguments: Append to scratch without a platform, and
// Append of nothing, are refused with ErrInvalid before anything is
// written.
func TestAppendInvalidArguments(t *testing.T) {
	ctx := context.Background()
	tree, spec := helloTree(t, "linux/amd64")
	for name, c := range map[string]struct {
		layers []Layer
		opts   []Option
	}{
		"scratch without a platform": {layers: []Layer{{Path: tree}}},
		"nothing to add":             {opts: []Option{WithPlatform(spec)}},
	} {
		if err := CheckAppend(true, c.layers, c.opts...); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: CheckAppend: %v, want ErrInvalid", name, err)
		}
		dir := filepath.Join(t.TempDir(), "layout")
		dst := ocilayout.Open(dir, "v1", "")
		_, err := Append(ctx, nil, dst, c.layers, c.opts...)
		dst.Close()
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: wrote %s: %v", name, dir, err)
		}
	}
}
