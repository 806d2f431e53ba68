package opener

import (
	"go/build"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ferry-dev/ferry/"

// backends are the store backends only the opener may gather.
var backends = []string{"store/registry", "store/ocilayout", "store/ociarchive", "store/dockerarchive", "store/dirstore", "store/regroot"}

// TestImportRules checks the floors docs/architecture.md draws, from the
// packages' imports (tests aside): the commands import no store backend
// and not foreign; the copy engine imports no registry transport; outside
// store/, only the opener imports three or more backends.
func TestImportRules(t *testing.T) {
	imports := map[string][]string{} // package (relative to the module) -> imports
	err := filepath.WalkDir("..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if name := d.Name(); p != ".." && (strings.HasPrefix(name, ".") || name == "testdata") {
			return filepath.SkipDir
		}
		pkg, err := build.ImportDir(p, 0)
		if err != nil {
			return nil // no Go files here
		}
		rel, _ := filepath.Rel("..", p)
		imports[filepath.ToSlash(rel)] = pkg.Imports
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(imports) < 20 {
		t.Fatalf("found %d packages; the walk is broken", len(imports))
	}
	for pkg, imps := range imports {
		var n int
		for _, imp := range imps {
			rel, ours := strings.CutPrefix(imp, module)
			switch {
			case pkg == "internal/cli" && ours && (slices.Contains(backends, rel) || rel == "foreign"):
				t.Errorf("internal/cli imports %s: commands open stores through the opener", rel)
			case pkg == "transfer" && strings.HasPrefix(imp, "github.com/google/go-containerregistry/pkg/v1/remote"):
				t.Errorf("transfer imports %s: registry wire details belong in store/registry", imp)
			}
			if ours && slices.Contains(backends, rel) {
				n++
			}
		}
		if n >= 3 && pkg != "opener" && !strings.HasPrefix(pkg, "store/") {
			t.Errorf("%s imports %d store backends: only the opener gathers them", pkg, n)
		}
	}
}
