package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/inspect"
	"github.com/ferry-dev/ferry/location"
	"github.com/ferry-dev/ferry/opener"
	"github.com/ferry-dev/ferry/platform"
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
				sel, err := inspect.Select(cmd.Context(), src, f.platforms)
				if err != nil {
					src.Close()
					if errors.Is(err, platform.ErrInvalidSpec) {
						return usageErr(err)
					}
					return err
				}
				dstLoc = location.ForPull(args[1], sel.Single)
				// Copy what was looked at, without resolving again.
				extra = append(extra, transfer.WithRoot(sel.Root, sel.Raw))
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
