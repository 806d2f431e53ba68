package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/assemble"
	"github.com/ferry-dev/ferry/location"
	"github.com/ferry-dev/ferry/opener"
	"github.com/ferry-dev/ferry/progress"
)

func newAssembleCmd(g *globals) *cobra.Command {
	var (
		in   assemble.Input
		f    copyFlags
		root string
	)
	cmd := &cobra.Command{
		Use:   "assemble --manifest FILE [--config FILE] [--blob FILE]... DST",
		Short: "Build the image a manifest file describes from loose files, and write it to DST",
		Long: `Build the image a manifest file (Docker schema2 or OCI; not an index) describes
from files with arbitrary names — base.tar.gz, delta.tar.gz, config.json — and
write it to DST, any location copy takes, or with --root to the repository
NAME[:TAG] of a registry storage root, offline.

Every file is hashed (streaming) and matched to the manifest's config and
layers by digest and size. A config or layer that no file matches is an
error naming its digest, unless it is a foreign layer: then --foreign keep
(the default) leaves it at its urls, include or localize fetch it from them.
A file that matches nothing is an error naming it (--ignore-extra skips such
files). --digest-file FILE.digest (holding sha256:<hex>) cross-checks the
file FILE beside it, or, beside no given file, a digest the manifest uses.
--verify-diff-ids also checks the config's rootfs.diff_ids against the
decompressed layers (a decompression of every layer while it is hashed).

Nothing is written at DST until every check has passed; then the image is
copied as copy does: every blob verified again as it streams, the manifest
(its bytes as given, so its digest is the file's) last. The last line on
stdout is DST@sha256:<digest>.`,
		Example: `  ferry assemble --manifest delta.tar.gz.manifest.json --config delta.tar.gz.config.json \
      --blob base.tar.gz --blob delta.tar.gz --digest-file delta.tar.gz.digest \
      localhost:5000/servercore:latest
  ferry assemble --manifest m.json --blob base.tar.gz --blob delta.tar.gz --blob c.json \
      --root /var/lib/registry servercore:latest`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if in.Manifest == "" {
				return usageErr(fmt.Errorf("%s: --manifest FILE is required", cmd.CommandPath()))
			}
			if len(f.platforms) > 0 {
				return usageErr(fmt.Errorf("%s: --platform does not apply: a manifest file is one image", cmd.CommandPath()))
			}
			return g.runAssemble(cmd, in, root, args[0], &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&in.Manifest, "manifest", "", "the image manifest file (required)")
	fl.StringVar(&in.Config, "config", "", "the config file (else found among --blob)")
	fl.StringArrayVar(&in.Blobs, "blob", nil, "a layer (or config) file, any name (repeatable)")
	fl.StringArrayVar(&in.DigestFiles, "digest-file", nil, "a .digest file holding sha256:<hex> to cross-check (repeatable)")
	fl.BoolVar(&in.IgnoreExtra, "ignore-extra", false, "skip files that match no descriptor instead of failing")
	fl.BoolVar(&in.VerifyDiffIDs, "verify-diff-ids", false, "check the config's diff_ids against the decompressed layers")
	fl.StringVar(&root, "root", "", "write into this registry storage root; DST is then NAME[:TAG]")
	f.register(cmd, "keep")
	return cmd
}

func (g *globals) runAssemble(cmd *cobra.Command, in assemble.Input, rootDir, dstArg string, f *copyFlags) error {
	ctx := cmd.Context()
	var dstLoc location.Location
	var repoName, tag string
	var err error
	if rootDir != "" {
		if repoName, tag, err = opener.ParseRootName(dstArg); err != nil {
			return usageErr(err)
		}
	} else if dstLoc, err = g.parseLocation(dstArg); err != nil {
		return err
	}
	mode, err := progress.ParseMode(g.progress)
	if err != nil {
		return usageErr(err)
	}
	// A storage root is served as a registry: registry defaults.
	opts, err := f.options(g, rootDir == "" && dstLoc.IsLocal())
	if err != nil {
		return err
	}
	plan, err := assemble.Match(ctx, in)
	if err != nil {
		return err
	}
	for _, p := range plan.Ignored {
		fmt.Fprintf(g.stderr, "ignored %s: it matches nothing in the manifest\n", p)
	}
	for _, d := range plan.DiffIDsUnchecked {
		fmt.Fprintf(g.stderr, "diff_id of layer %s not checked: no file for it\n", d)
	}
	src := plan.Source()
	defer src.Close()
	if rootDir != "" {
		return g.copyIntoRoot(cmd, src, rootDir, "ferry assemble", repoName, tag, opts, f)
	}
	dst, err := g.open.Target(ctx, dstLoc, src)
	if err != nil {
		return err
	}
	return g.copyAndReport(ctx, src, dst, dstLoc.Raw, opts, mode, f)
}
