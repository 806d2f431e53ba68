package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/location"
	"github.com/ferry-dev/ferry/transfer"
	"github.com/ferry-dev/ferry/verify"
)

func newVerifyCmd(g *globals) *cobra.Command {
	var (
		deep, asJSON, repair bool
		airgap               bool
		from                 string
		maxExpansion         int
		f                    copyFlags
	)
	cmd := &cobra.Command{
		Use:   "verify REF",
		Short: "Prove that a location holds every manifest and blob of an image",
		Long: `Walk REF's index and every platform's manifest and check that each config
and layer blob is held by the location itself, with the declared size. A
descriptor's urls are never followed to find a blob, so a registry that
lacks a foreign base layer is told apart from one that hosts it: such layers
are reported foreign-not-hosted (fine) or foreign-hosted.

--deep also re-hashes every blob, fetches foreign blobs through their urls,
checks the config's diff_ids against the decompressed layers and the
config's os/architecture against the index entry.

Problems are printed as a table and the exit code is 1; otherwise one
summary line and exit 0. --repair --from SRC copies what is missing from
SRC and writes again, by digest, the blobs found damaged (wrong size or
bytes), then verifies again. A registry keeps the bytes it already holds for
a digest (distribution does), so damage there outlives a repair.

--deep reports a layer that decompresses to more than --max-expansion times
its compressed size (at least 64 MiB) as too-large, without decompressing
the rest: a decompression bomb runs no longer than that.

--airgap also fails on every descriptor that still has urls or a foreign
media type (not-airgapped), naming each: containerd fetches urls before
the registry and gives up on a connection error, so a mirror behind an
air gap must be localized (copy or sync --foreign localize).`,
		Example: `  ferry verify --deep registry.internal:5000/windows/servercore:ltsc2022
  ferry verify --repair --from mcr.microsoft.com/windows/servercore:ltsc2022 registry.internal:5000/windows/servercore:ltsc2022`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if repair != (from != "") {
				return usageErr(errors.New("verify: --repair and --from go together"))
			}
			loc, err := g.parseLocation(args[0])
			if err != nil {
				return err
			}
			fetcher, err := g.open.Fetcher(f.foreignAllow, 0)
			if err != nil {
				return usageErr(err)
			}
			if maxExpansion < 0 {
				return usageErr(fmt.Errorf("--max-expansion %d: must not be negative", maxExpansion))
			}
			opts := []verify.Option{verify.WithDeep(deep), verify.WithFetcher(fetcher), verify.WithMaxExpansion(maxExpansion)}
			rep, err := g.verify(cmd, loc, opts)
			if err != nil {
				return err
			}
			if repair && len(rep.Problems()) > 0 {
				if err := g.repair(cmd, from, loc, rep.Damaged(), &f); err != nil {
					return err
				}
				if rep, err = g.verify(cmd, loc, opts); err != nil {
					return err
				}
			}
			if airgap {
				if err := g.checkAirgap(cmd, loc, rep); err != nil {
					return err
				}
			}
			return g.printVerify(loc, rep, asJSON)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&deep, "deep", false, "re-hash every blob, fetch foreign blobs through their urls, check diff_ids and platforms")
	fl.BoolVar(&asJSON, "json", false, "print every finding as JSON")
	fl.IntVar(&maxExpansion, "max-expansion", verify.DefaultMaxExpansion, "with --deep, report a layer that decompresses to more than this many times its compressed size (at least 64 MiB) as too-large, as a decompression bomb does; 0: no limit")
	fl.BoolVar(&repair, "repair", false, "copy what is missing or damaged from --from, then verify again")
	fl.StringVar(&from, "from", "", "the source --repair copies from")
	fl.BoolVar(&airgap, "airgap", false, "also fail on every descriptor that still has urls or a foreign media type (containerd would fetch it from outside)")
	fl.StringVar(&f.foreign, "foreign", "", "foreign-layer policy for --repair, as in copy")
	fl.StringArrayVar(&f.foreignAllow, "foreign-allow", nil, "regular expression matched against a foreign-layer URL's SCHEME://HOST[:PORT]/PATH, allowing it although it points at a loopback or private address; only a pattern containing '@' allows a URL with a user part (repeatable)")
	return cmd
}

func (g *globals) verify(cmd *cobra.Command, loc location.Location, opts []verify.Option) (*verify.Report, error) {
	src, err := g.open.Source(cmd.Context(), loc)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	return verify.Verify(cmd.Context(), src, opts...)
}

// checkAirgap adds the descriptors of loc that would reach outside an air
// gap to rep.
func (g *globals) checkAirgap(cmd *cobra.Command, loc location.Location, rep *verify.Report) error {
	src, err := g.open.Source(cmd.Context(), loc)
	if err != nil {
		return err
	}
	defer src.Close()
	return verify.CheckAirgap(cmd.Context(), src, rep)
}

// repair copies from into loc; the copy skips what loc already holds
// intact, and writes again the damaged blobs verify found, by digest.
func (g *globals) repair(cmd *cobra.Command, from string, loc location.Location, damaged map[v1.Hash]bool, f *copyFlags) error {
	srcLoc, err := g.parseLocation(from)
	if err != nil {
		return err
	}
	f.jobs = 4
	opts, err := f.options(g, loc.IsLocal())
	if err != nil {
		return err
	}
	src, err := g.open.Source(cmd.Context(), srcLoc)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := g.open.Target(cmd.Context(), loc, src)
	if err != nil {
		return err
	}
	res, err := transfer.Copy(cmd.Context(), src, verify.ForRepair(dst, damaged), opts...)
	if err != nil {
		dst.Close()
		return fmt.Errorf("repair from %s: %w", from, err)
	}
	if err := dst.Close(); err != nil {
		return err
	}
	fmt.Fprintf(g.stderr, "repaired from %s: copied %s, %d already there\n", from, plural(res.BlobsCopied, "blob"), res.BlobsSkipped)
	return nil
}

func (g *globals) printVerify(loc location.Location, rep *verify.Report, asJSON bool) error {
	problems := rep.Problems()
	if asJSON {
		if err := printJSON(g, rep); err != nil {
			return err
		}
	} else if len(problems) == 0 {
		how := "present with their declared sizes"
		if rep.Deep {
			how = "present and re-hashed, diff_ids checked"
		}
		fmt.Fprintf(g.stdout, "%s@%s: %s; %s %s; foreign layers: %d not hosted, %d hosted\n",
			loc.Raw, rep.Root.Digest, plural(rep.Manifests, "manifest"), plural(rep.Count(verify.Present), "blob"), how, rep.Count(verify.ForeignNotHosted), rep.Count(verify.ForeignHosted))
	} else {
		tw := tabwriter.NewWriter(trimmed{g.stdout}, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MANIFEST\tPLATFORM\tKIND\tDIGEST\tPROBLEM\tDETAIL")
		for _, p := range problems {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Manifest, p.Platform, p.Kind, p.Descriptor.Digest, p.Status, p.Detail)
		}
		tw.Flush()
		if rep.Count(verify.TooLarge) > 0 {
			fmt.Fprintln(g.stderr, "ferry: hint: a too-large layer decompresses to more than --max-expansion times its size; raise it (0: no limit) if the layer is genuine")
		}
	}
	if len(problems) > 0 {
		return &ExitError{Code: 1, Err: fmt.Errorf("verify %s: %s", loc.Raw, plural(len(problems), "problem"))}
	}
	return nil
}
