package inspect

import (
	"bytes"
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/platform"
	"github.com/ferry-dev/ferry/store"
)

// Selection is what a source names once narrowed to some platforms.
type Selection struct {
	// Single says it is one image: a single image, or an index of which
	// the platforms select exactly one entry.
	Single bool
	// Root is the manifest or index the source names, as resolved.
	Root v1.Descriptor
	// Raw is the index's content when Select fetched it, else nil.
	Raw []byte
}

// Select resolves src and says whether, narrowed by the platform specs
// (platform.ParseSpec's syntax), it is one image, selecting as the copy
// will (platform.Select). The root and the index's content come back for
// a copy to take as they are (transfer.WithRoot) instead of resolving
// again. The specs are parsed only when src names an index; errors wrap
// platform.ErrInvalidSpec when one does not parse.
func Select(ctx context.Context, src store.Source, specs []string) (Selection, error) {
	root, err := src.Resolve(ctx)
	if err != nil {
		return Selection{}, err
	}
	sel := Selection{Single: root.MediaType.IsImage(), Root: root}
	if root.MediaType.IsImage() || !root.MediaType.IsIndex() || len(specs) == 0 {
		return sel, nil
	}
	parsed := make([]platform.Spec, len(specs))
	for i, s := range specs {
		if parsed[i], err = platform.ParseSpec(s); err != nil {
			return sel, err
		}
	}
	if sel.Raw, err = src.FetchManifest(ctx, root); err != nil {
		return Selection{Root: root}, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(sel.Raw))
	if err != nil {
		return Selection{Root: root}, fmt.Errorf("index %s: %w", root.Digest, err)
	}
	entries, err := platform.Select(idx.Manifests, parsed)
	if err != nil {
		return Selection{Root: root}, fmt.Errorf("%s: %w", store.NameOf(src), err)
	}
	sel.Single = len(entries) == 1
	return sel, nil
}
