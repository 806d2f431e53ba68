package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/bundle"
	"github.com/ferry-dev/ferry/location"
	"github.com/ferry-dev/ferry/progress"
	"github.com/ferry-dev/ferry/transfer"
)

func newBundleCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Carry many images across an air gap in one file",
		Long: `A bundle is an oci-archive holding many images, each a tag or a whole
index, with the reference it came from. Create it on a connected machine,
carry it across, and push every image under its original repository path
on the private registry.`,
	}
	cmd.AddCommand(newBundleCreateCmd(g), newBundlePushCmd(g), newBundleListCmd(g))
	return cmd
}

func newBundleCreateCmd(g *globals) *cobra.Command {
	var f copyFlags
	var out string
	cmd := &cobra.Command{
		Use:   "create -o FILE REF...",
		Short: "Write images into a new bundle",
		Long: `Write every REF (a single image or a whole index, every platform unless
--platform narrows it) into the new bundle FILE. Foreign layers are
included by default. FILE appears only when every image was written.`,
		Example: `  ferry bundle create -o windows.tar mcr.microsoft.com/windows/servercore:ltsc2019 mcr.microsoft.com/windows/nanoserver:ltsc2022`,
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageErr(fmt.Errorf("bundle create: -o FILE is required"))
			}
			opts, err := f.options(g, true) // a bundle is a local file
			if err != nil {
				return err
			}
			var images []bundle.Image
			defer func() {
				for _, img := range images {
					img.Source.Close()
				}
			}()
			for _, a := range args {
				loc, err := g.parseLocation(a)
				if err != nil {
					return err
				}
				if loc.Kind != location.Registry {
					return usageErr(fmt.Errorf("%s: a bundle records registry references; copy local files with copy", a))
				}
				src, err := g.open.Source(cmd.Context(), loc)
				if err != nil {
					return err
				}
				images = append(images, bundle.Image{Ref: loc.Ref, Source: src})
			}
			return g.withProgress(&f, opts, func(opts []transfer.Option) ([]bundle.Result, error) {
				return bundle.Create(cmd.Context(), out, images, opts...)
			})
		},
	}
	f.register(cmd, "")
	cmd.Flags().StringVarP(&out, "output", "o", "", "the bundle file to write")
	return cmd
}

func newBundlePushCmd(g *globals) *cobra.Command {
	var f copyFlags
	cmd := &cobra.Command{
		Use:   "push FILE REGISTRY[/PREFIX]",
		Short: "Push every image of a bundle under its original repository path",
		Long: `Push every image of the bundle FILE to REGISTRY[/PREFIX], each under its
original repository path: mcr.microsoft.com/windows/servercore:ltsc2019
goes to REGISTRY/PREFIX/windows/servercore:ltsc2019. Foreign layers are
kept foreign by default, as in copy.`,
		Example: `  ferry bundle push --foreign localize windows.tar registry.internal:5000/mirror`,
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			// The prefix must be a repository path under a registry: check
			// it parses as one before anything is read.
			if _, err := name.NewRepository(args[1]); err != nil {
				return usageErr(fmt.Errorf("%s: not REGISTRY[/PREFIX]: %w", args[1], err))
			}
			opts, err := f.options(g, false) // to a registry
			if err != nil {
				return err
			}
			return g.withProgress(&f, opts, func(opts []transfer.Option) ([]bundle.Result, error) {
				return bundle.Push(cmd.Context(), args[0], args[1], g.open.Resolver(), opts...)
			})
		},
	}
	f.register(cmd, "")
	return cmd
}

// withProgress runs a bundle operation with progress reporting and prints
// one line per image (or JSON).
func (g *globals) withProgress(f *copyFlags, opts []transfer.Option, do func([]transfer.Option) ([]bundle.Result, error)) error {
	mode, err := progress.ParseMode(g.progress)
	if err != nil {
		return usageErr(err)
	}
	rep := progress.New(g.stderr, mode)
	results, err := do(append(opts, transfer.WithEvents(rep.Event)))
	rep.Close()
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(g, results)
	}
	for _, r := range results {
		if mode != progress.None {
			g.summary(r.Result)
		}
		if r.Destination != "" {
			fmt.Fprintf(g.stdout, "%s -> %s@%s\n", r.Ref, r.Destination, r.Written.Digest)
		} else {
			fmt.Fprintf(g.stdout, "%s@%s\n", r.Ref, r.Written.Digest)
		}
	}
	return nil
}

func newBundleListCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list FILE",
		Short: "List the images of a bundle",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			entries, err := bundle.List(args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g, entries)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REFERENCE\tDIGEST\tKIND")
			for _, e := range entries {
				kind := "image"
				if e.Descriptor.MediaType.IsIndex() {
					kind = "index"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Ref, e.Descriptor.Digest, kind)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
