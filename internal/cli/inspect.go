package cli

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/inspect"
	"github.com/ferry-dev/ferry/platform"
	"github.com/ferry-dev/ferry/progress"
)

func newInspectCmd(g *globals) *cobra.Command {
	var raw, config, asJSON bool
	var platforms []string
	cmd := &cobra.Command{
		Use:   "inspect REF",
		Short: "Show an image's media type, digest, platforms and layers (foreign layers with their urls)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if raw && config || asJSON && (raw || config) {
				return usageErr(fmt.Errorf("--raw, --config and --json cannot be used together"))
			}
			var specs []platform.Spec
			for _, s := range platforms {
				sp, err := platform.ParseSpec(s)
				if err != nil {
					return usageErr(err)
				}
				specs = append(specs, sp)
			}
			ctx := cmd.Context()
			loc, err := g.parseLocation(args[0])
			if err != nil {
				return err
			}
			src, err := g.open.Source(ctx, loc)
			if err != nil {
				return err
			}
			defer src.Close()
			if raw {
				desc, err := src.Resolve(ctx)
				if err != nil {
					return err
				}
				b, err := src.FetchManifest(ctx, desc)
				if err != nil {
					return err
				}
				_, err = g.stdout.Write(append(bytes.TrimRight(b, "\n"), '\n'))
				return err
			}
			img, err := inspect.Inspect(ctx, src)
			if err != nil {
				return err
			}
			if config {
				b, err := img.Config(ctx, src, specs)
				if err != nil {
					return err
				}
				_, err = g.stdout.Write(append(bytes.TrimRight(b, "\n"), '\n'))
				return err
			}
			if asJSON {
				return printJSON(g, referenced{Reference: args[0], Result: img})
			}
			printImage(g.stdout, args[0], img)
			return nil
		},
	}
	cmd.Flags().BoolVar(&raw, "raw", false, "print the manifest or index as stored")
	cmd.Flags().BoolVar(&config, "config", false, "print the image config (with --platform for an index)")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print the reference, the root descriptor and every platform's manifest, config and layers as one JSON object ({"reference", "descriptor", "manifests"})`)
	cmd.Flags().StringArrayVar(&platforms, "platform", nil, "with --config on an index: the platform whose config to print")
	return cmd
}

func printImage(w io.Writer, ref string, img *inspect.Image) {
	fmt.Fprintf(w, "Reference:  %s\n", ref)
	fmt.Fprintf(w, "Digest:     %s\n", img.Descriptor.Digest)
	fmt.Fprintf(w, "MediaType:  %s\n", img.Descriptor.MediaType)
	fmt.Fprintf(w, "Size:       %d\n", img.Descriptor.Size)
	for _, m := range img.Manifests {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "Platform:   %s\n", m.Platform)
		fmt.Fprintf(w, "  Manifest: %s (%s)\n", m.Descriptor.Digest, m.Descriptor.MediaType)
		fmt.Fprintf(w, "  Config:   %s (%s)\n", m.Config.Digest, progress.Human(m.Config.Size))
		fmt.Fprintf(w, "  Layers:   %d, %s\n", len(m.Layers), progress.Human(m.LayerBytes()))
		tw := tabwriter.NewWriter(trimmed{w}, 0, 0, 2, ' ', tabwriter.AlignRight)
		for _, l := range m.Layers {
			note := ""
			if l.Foreign {
				note = "FOREIGN " + strings.Join(l.Descriptor.URLs, " ")
			}
			fmt.Fprintf(tw, "    %s\t  %s\t  %s\t\n", progress.Human(l.Descriptor.Size), l.Descriptor.Digest, note)
		}
		tw.Flush()
	}
}

func newDigestCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "digest REF",
		Short: "Print the digest of the manifest or index a reference names",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			loc, err := g.parseLocation(args[0])
			if err != nil {
				return err
			}
			src, err := g.open.Source(cmd.Context(), loc)
			if err != nil {
				return err
			}
			defer src.Close()
			desc, err := src.Resolve(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, desc.Digest)
			return nil
		},
	}
}

// trimmed drops the spaces at the end of each line written to w, which
// tabwriter leaves after an empty or right-aligned last column. Each Write
// must hold whole lines, as a tabwriter's do.
type trimmed struct{ w io.Writer }

func (t trimmed) Write(p []byte) (int, error) {
	lines := bytes.SplitAfter(p, []byte("\n"))
	var out []byte
	for _, l := range lines {
		nl := bytes.HasSuffix(l, []byte("\n"))
		l = bytes.TrimRight(bytes.TrimSuffix(l, []byte("\n")), " ")
		out = append(out, l...)
		if nl {
			out = append(out, '\n')
		}
	}
	if _, err := t.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}
