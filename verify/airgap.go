package verify

import (
	"context"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/inspect"
	"github.com/ferry-dev/ferry/mediatype"
	"github.com/ferry-dev/ferry/store"
)

// NotAirgapped: the descriptor still has urls or a foreign media type.
// containerd fetches a descriptor's urls before asking the registry and
// gives up on a connection error, so an air-gapped mirror for containerd
// must be localized (copy --foreign localize). It is a problem.
const NotAirgapped Status = "not-airgapped"

// CheckAirgap adds to r a NotAirgapped finding for every descriptor
// reachable from src's root — each image manifest as its index lists it,
// each config and layer — that has urls or a foreign media type.
func CheckAirgap(ctx context.Context, src store.Source, r *Report) error {
	img, err := inspect.Inspect(ctx, src)
	if err != nil {
		return err
	}
	add := func(m inspect.Manifest, kind string, d v1.Descriptor) {
		var why []string
		if mediatype.IsForeign(string(d.MediaType)) {
			why = append(why, "foreign media type "+string(d.MediaType))
		}
		if len(d.URLs) > 0 {
			why = append(why, "urls "+strings.Join(d.URLs, ", "))
		}
		if len(why) == 0 {
			return
		}
		r.Findings = append(r.Findings, Finding{Manifest: m.Descriptor.Digest, Platform: m.Platform, Kind: kind, Descriptor: d, Status: NotAirgapped,
			Detail: fmt.Sprintf("%s: containerd would fetch it from outside the air gap (localize it)", strings.Join(why, "; "))})
	}
	for _, m := range img.Manifests {
		add(m, "manifest", m.Descriptor)
		add(m, "config", m.Config)
		for _, l := range m.Layers {
			add(m, "layer", l.Descriptor)
		}
	}
	return nil
}
