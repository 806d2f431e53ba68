package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/imagemod"
	"github.com/ferry-dev/ferry/location"
	"github.com/ferry-dev/ferry/platform"
	"github.com/ferry-dev/ferry/progress"
	"github.com/ferry-dev/ferry/store"
)

func newIndexCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "index",
		Short: "Build multi-platform indexes from images",
	}
	cmd.AddCommand(newIndexCreateCmd(g), newIndexPushSpecCmd(g))
	return cmd
}

// indexFlags registers the copy flags an index command honours: all but
// --platform, which it refuses.
func indexFlags(cmd *cobra.Command, f *copyFlags) {
	f.register(cmd, "")
	_ = cmd.Flags().MarkHidden("platform")
}

func refusePlatform(cmd *cobra.Command) error {
	if cmd.Flags().Changed("platform") {
		return usageErr(fmt.Errorf("%s takes no --platform: platforms come from the images' configs", cmd.CommandPath()))
	}
	return nil
}

func newIndexCreateCmd(g *globals) *cobra.Command {
	var f copyFlags
	var annotations []string
	cmd := &cobra.Command{
		Use:   "create TARGET SRC...",
		Short: "Write an index of the SRC images to TARGET",
		Long: `Write to TARGET an index listing each SRC image, in order, with its
platform read from the image's config (os.version and os.features
included: Windows clients choose by them). Images in other repositories
of the same registry are mounted, others copied. Two images with the same
platform are refused; nothing is written until every SRC is read.

The index is a Docker manifest list when every SRC is a Docker manifest and
no --annotation is given, else an OCI image index, which lists Docker and
OCI manifests alike (a Docker manifest list never lists an OCI manifest).
Images are listed as they are, unless --foreign localize or
--foreign-rewrite-urls rewrites them.`,
		Example: `  ferry index create myreg/app:1.0 myreg/app:1.0-ltsc2019 myreg/app:1.0-ltsc2022`,
		Args:    minArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := refusePlatform(cmd); err != nil {
				return err
			}
			ann, err := parseKV("annotation", annotations)
			if err != nil {
				return err
			}
			spec := &imagemod.Spec{Image: args[0], Annotations: ann}
			for _, s := range args[1:] {
				spec.Manifests = append(spec.Manifests, imagemod.SpecEntry{Image: s})
			}
			return g.runIndex(cmd, spec, &f)
		},
	}
	indexFlags(cmd, &f)
	cmd.Flags().StringArrayVar(&annotations, "annotation", nil, "KEY=VALUE index annotation (repeatable)")
	return cmd
}

func newIndexPushSpecCmd(g *globals) *cobra.Command {
	var f copyFlags
	cmd := &cobra.Command{
		Use:   "push-spec SPEC.yml",
		Short: "Write the index a manifest-tool YAML spec describes",
		Long: `Read a manifest-tool push-from-spec YAML file — image, tags, annotations,
manifests[].image and manifests[].platform (os, architecture, variant,
osversion, osfeatures; the OCI spellings os.version and os.features too) —
and write the index to image and to every tag in tags.

Platform fields the spec leaves out, or a whole missing platform, are read
from each image's config. Unknown keys are warned about. A missing image
or a duplicate platform fails before anything is written.`,
		Example: `  ferry index push-spec app.yml`,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := refusePlatform(cmd); err != nil {
				return err
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			spec, warnings, err := imagemod.ParseSpec(data)
			for _, w := range warnings {
				fmt.Fprintf(g.stderr, "warning: %s: %s\n", args[0], w)
			}
			if err != nil {
				return usageErr(fmt.Errorf("%s: %w", args[0], err))
			}
			return g.runIndex(cmd, spec, &f)
		},
	}
	indexFlags(cmd, &f)
	return cmd
}

// tagTargets returns the locations of the extra tags: the same
// repository as loc, other tags. Only registry locations have them.
func (g *globals) tagTargets(loc location.Location, tags []string) ([]location.Location, error) {
	var out []location.Location
	for _, t := range tags {
		if loc.Kind != location.Registry {
			return nil, usageErr(fmt.Errorf("%s: extra tags need a registry reference", loc.Raw))
		}
		l, err := g.parseLocation(loc.Ref.Context().Tag(t).String())
		if err != nil {
			return nil, usageErr(fmt.Errorf("tag %q: %w", t, err))
		}
		out = append(out, l)
	}
	return out, nil
}

func (g *globals) runIndex(cmd *cobra.Command, spec *imagemod.Spec, f *copyFlags) error {
	ctx := cmd.Context()
	dstLoc, err := g.parseLocation(spec.Image)
	if err != nil {
		return err
	}
	tagLocs, err := g.tagTargets(dstLoc, spec.Tags)
	if err != nil {
		return err
	}
	mode, err := progress.ParseMode(g.progress)
	if err != nil {
		return usageErr(err)
	}
	for _, m := range spec.Manifests {
		if _, err := g.parseLocation(m.Image); err != nil {
			return err
		}
	}
	defer g.open.Close() // the entries' sources
	open := g.open.Resolver()
	var entries []imagemod.IndexEntry
	for _, m := range spec.Manifests {
		src, err := open.Source(ctx, m.Image)
		if err != nil {
			return err
		}
		entries = append(entries, imagemod.IndexEntry{Source: src, Platform: m.Platform})
	}
	rep := progress.New(g.stderr, mode)
	defer rep.Close()
	blobs, err := g.blobsFor(f, dstLoc, rep)
	if err != nil {
		return err
	}
	dst, err := g.open.Target(ctx, dstLoc, entries[0].Source)
	if err != nil {
		return err
	}
	targets := []store.Target{dst}
	defer func() {
		for _, t := range targets {
			t.Close()
		}
	}()
	for _, l := range tagLocs {
		t, err := g.open.Target(ctx, l, nil)
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	opts := []imagemod.Option{imagemod.WithBlobs(blobs)}
	if len(spec.Annotations) > 0 {
		opts = append(opts, imagemod.WithAnnotations(spec.Annotations))
	}
	res, err := imagemod.IndexCreate(ctx, dst, entries, targets[1:], opts...)
	for _, t := range targets {
		if cerr := t.Close(); err == nil {
			err = cerr
		}
	}
	targets = nil
	if err != nil {
		return err
	}
	return g.report(f.json, spec.Image, res.Written.Digest, res, func() {
		for _, e := range res.Entries {
			fmt.Fprintf(g.stderr, "%s %s\n", e.Digest, platform.Format(e.Platform))
		}
	})
}
