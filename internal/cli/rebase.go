package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/imagemod"
	"github.com/ferry-dev/ferry/location"
	"github.com/ferry-dev/ferry/progress"
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/transfer"
)

func newRebaseCmd(g *globals) *cobra.Command {
	var f copyFlags
	var newBase, oldBase, target string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "rebase IMAGE --new-base REF [--old-base REF] -t TARGET",
		Short: "Swap the base layers under an image without rebuilding it",
		Long: `Replace the base layers of IMAGE (an image or a multi-platform index) by
those of the new base, keeping IMAGE's own layers on top, and write the
result to TARGET.

The old base is --old-base, else the one IMAGE's annotations
org.opencontainers.image.base.name / .base.digest record. ferry refuses,
writing nothing, when IMAGE's layers do not start with the old base's or
when os or architecture differ from the new base's. An index is rebased
per platform onto the new base entry with the same os/architecture/variant
and Windows build. Moving across Windows builds is allowed with a warning.

Only a new config and manifest are written: layers are mounted within a
registry, copied otherwise; the new base's foreign layers follow --foreign
(default keep for registries, include for local files). The result keeps
IMAGE's manifest and config media types, and the new base's layers take
that schema's types: on a Docker base, an OCI image lists the foreign
layers as OCI non-distributable layers (urls kept) and the others as OCI
layers; a Docker image on an OCI base the reverse. Blob digests never
change. The last line on stdout is TARGET@sha256:<digest>.`,
		Example: `  ferry rebase myreg/app:1.0 --new-base mcr.microsoft.com/windows/servercore:ltsc2019 -t myreg/app:1.0-patched
  ferry rebase myreg/app:1.0 --old-base myreg/servercore:2024-05 --new-base myreg/servercore:2024-06 -t myreg/app:1.0 --dry-run`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if newBase == "" || target == "" {
				return usageErr(errors.New("rebase needs --new-base REF and -t TARGET"))
			}
			if cmd.Flags().Changed("platform") {
				return usageErr(errors.New("rebase takes no --platform: every platform of an index is rebased"))
			}
			return g.runRebase(cmd, args[0], newBase, oldBase, target, dryRun, &f)
		},
	}
	f.register(cmd, "")
	fl := cmd.Flags()
	fl.StringVar(&newBase, "new-base", "", "the base to put under IMAGE's layers (required)")
	fl.StringVar(&oldBase, "old-base", "", "the base IMAGE was built on (default: from its base annotations)")
	fl.StringVarP(&target, "target", "t", "", "where to write the result (required)")
	fl.BoolVar(&dryRun, "dry-run", false, "check and report, write nothing")
	_ = fl.MarkHidden("platform") // copy's flag; rebase refuses it
	return cmd
}

// blobsFor turns the copy flags into a transfer.Blobs for dst, reporting
// progress on stderr.
func (g *globals) blobsFor(f *copyFlags, dst location.Location, rep *progress.Reporter) (*transfer.Blobs, error) {
	opts, err := f.options(g, dst.IsLocal())
	if err != nil {
		return nil, err
	}
	if rep != nil {
		opts = append(opts, transfer.WithEvents(rep.Event))
	}
	b, err := transfer.NewBlobs(opts...)
	if err != nil {
		return nil, usageErr(err)
	}
	return b, nil
}

func (g *globals) runRebase(cmd *cobra.Command, imageArg, newBaseArg, oldBaseArg, targetArg string, dryRun bool, f *copyFlags) error {
	ctx := cmd.Context()
	defer g.open.Close() // the sources open opened
	open := g.open.Resolver()
	dstLoc, err := g.parseLocation(targetArg)
	if err != nil {
		return err
	}
	mode, err := progress.ParseMode(g.progress)
	if err != nil {
		return usageErr(err)
	}
	// Parse every argument before opening anything.
	for _, a := range []string{imageArg, newBaseArg, oldBaseArg} {
		if a == "" {
			continue
		}
		if _, err := g.parseLocation(a); err != nil {
			return err
		}
	}
	src, err := open.Source(ctx, imageArg)
	if err != nil {
		return err
	}
	nb, err := open.Source(ctx, newBaseArg)
	if err != nil {
		return err
	}
	opts := []imagemod.Option{imagemod.WithResolver(open), imagemod.WithBaseName(newBaseArg)}
	if oldBaseArg != "" {
		ob, err := open.Source(ctx, oldBaseArg)
		if err != nil {
			return err
		}
		opts = append(opts, imagemod.WithOldBase(ob))
	}
	if dryRun {
		opts = append(opts, imagemod.WithDryRun())
	}
	rep := progress.New(g.stderr, mode)
	blobs, err := g.blobsFor(f, dstLoc, rep)
	if err != nil {
		rep.Close()
		return err
	}
	opts = append(opts, imagemod.WithBlobs(blobs))
	var dst store.Target
	if !dryRun { // a dry run opens nothing for writing
		// The new base holds most of the bytes: the target may mount from it.
		if dst, err = g.open.Target(ctx, dstLoc, nb); err != nil {
			rep.Close()
			return err
		}
	}
	res, err := imagemod.Rebase(ctx, src, nb, dst, opts...)
	rep.Close()
	if dst != nil {
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(g.stderr, "warning: %s\n", w)
	}
	return g.report(f.json, targetArg, res.Written.Digest, res, func() {
		for _, im := range res.Images {
			fmt.Fprintf(g.stderr, "%s: %s -> %s (%d base layers from %s, %d app layers)\n", im.Platform, im.Old, im.New, im.BaseLayers, im.NewBase, im.AppLayers)
		}
		if dryRun {
			fmt.Fprintf(g.stderr, "dry run: nothing written\n")
		} else if mode != progress.None {
			fmt.Fprintln(g.stderr, blobCounts(&res.Blobs))
		}
	})
}
