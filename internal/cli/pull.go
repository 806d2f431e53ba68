package cli

import (
	"bytes"
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/location"
	"github.com/ferry-dev/ferry/opener"
	"github.com/ferry-dev/ferry/platform"
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/transfer"
)

// formatLocation is the local location --format names for path p.
func formatLocation(format, p string) (location.Location, error) {
	for _, k := range []location.Kind{location.OCILayout, location.OCIArchive, location.DockerArchive} {
		if format == k.String() {
			return location.Location{Kind: k, Raw: k.String() + ":" + p, Path: p}, nil
		}
	}
	return location.Location{}, usageErr(fmt.Errorf("--format %q: want oci, oci-archive or docker-archive", format))
}

func newPullCmd(g *globals) *cobra.Command {
	var f copyFlags
	var format string
	cmd := &cobra.Command{
		Use:   "pull REF PATH",
		Short: "Pull an image into a local OCI layout, oci-archive or docker-archive",
		Long: `Pull an image (or a whole index) into PATH: copy with a local destination.

Without --format, PATH decides: an existing directory, or a name without a
.tar extension, becomes an OCI layout; a .tar file becomes a docker-archive
(docker load reads it) when the pull is one image, an oci-archive when it
is a multi-platform index. Foreign layers are included by default: a file
that lacks the base layers is useless across an air gap.`,
		Example: `  ferry pull --platform ltsc2022 mcr.microsoft.com/windows/servercore:ltsc2022 servercore.tar
  ferry pull --format oci mcr.microsoft.com/windows/nanoserver:ltsc2022 ./layout`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			srcLoc, err := g.parseLocation(args[0])
			if err != nil {
				return err
			}
			var dstLoc location.Location
			if format != "" {
				if dstLoc, err = formatLocation(format, args[1]); err != nil {
					return err
				}
			}
			src, err := g.open.Source(cmd.Context(), srcLoc)
			if err != nil {
				return err
			}
			var extra []transfer.Option
			if format == "" {
				single, root, raw, err := selectsOneImage(cmd.Context(), src, f.platforms)
				if err != nil {
					src.Close()
					return err
				}
				dstLoc = location.ForPull(args[1], single)
				// Copy what was looked at, without resolving again.
				extra = append(extra, transfer.WithRoot(root, raw))
			}
			if t, ok := opener.SourceTag(src); ok && dstLoc.Kind != location.DockerArchive {
				dstLoc.Tag = t.TagStr()
			}
			return g.copyLocations(cmd, srcLoc, dstLoc, src, &f, extra...)
		},
	}
	f.register(cmd, "")
	cmd.Flags().StringVar(&format, "format", "", "oci, oci-archive or docker-archive (default: from PATH)")
	return cmd
}

func newPushCmd(g *globals) *cobra.Command {
	var f copyFlags
	var format string
	cmd := &cobra.Command{
		Use:   "push PATH REF",
		Short: "Push an image from a local OCI layout, oci-archive or docker-archive to a registry",
		Long: `Push the image in PATH to REF: copy with a local source.

Without --format, PATH decides: a directory is an OCI layout, a tar holding
manifest.json a docker-archive, another tar holding index.json an
oci-archive. PATH may also be a full location (oci:DIR:TAG,
docker-archive:FILE:REPO:TAG) to pick one image of several.`,
		Example: `  ferry push servercore.tar registry.internal:5000/windows/servercore:ltsc2022`,
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var srcLoc location.Location
			var err error
			if format != "" {
				srcLoc, err = formatLocation(format, args[0])
			} else {
				srcLoc, err = location.Local(args[0]) // sniffs the file
			}
			if err != nil {
				return err
			}
			dstLoc, err := g.parseLocation(args[1])
			if err != nil {
				return err
			}
			if dstLoc.Kind != location.Registry {
				return usageErr(fmt.Errorf("%s: push writes to a registry; use copy between local locations", args[1]))
			}
			return g.copyLocations(cmd, srcLoc, dstLoc, nil, &f)
		},
	}
	f.register(cmd, "")
	cmd.Flags().StringVar(&format, "format", "", "oci, oci-archive or docker-archive (default: from PATH)")
	return cmd
}

// selectsOneImage says whether what src names, narrowed by the --platform
// specs, is one image: a single image, or an index of which the specs
// select exactly one entry, as the copy will select it (platform.Select).
// It returns the root it resolved, and the index's content when it
// fetched it, for the copy to take as they are.
func selectsOneImage(ctx context.Context, src store.Source, platforms []string) (single bool, root v1.Descriptor, raw []byte, err error) {
	if root, err = src.Resolve(ctx); err != nil {
		return false, root, nil, err
	}
	if root.MediaType.IsImage() || !root.MediaType.IsIndex() || len(platforms) == 0 {
		return root.MediaType.IsImage(), root, nil, nil
	}
	specs := make([]platform.Spec, len(platforms))
	for i, s := range platforms {
		if specs[i], err = platform.ParseSpec(s); err != nil {
			return false, root, nil, usageErr(err)
		}
	}
	if raw, err = src.FetchManifest(ctx, root); err != nil {
		return false, root, nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return false, root, nil, fmt.Errorf("index %s: %w", root.Digest, err)
	}
	sel, err := platform.Select(idx.Manifests, specs)
	if err != nil {
		return false, root, nil, fmt.Errorf("%s: %w", store.NameOf(src), err)
	}
	return len(sel) == 1, root, raw, nil
}
