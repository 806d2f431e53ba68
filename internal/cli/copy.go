package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/location"
	"github.com/ferry-dev/ferry/opener"
	"github.com/ferry-dev/ferry/platform"
	"github.com/ferry-dev/ferry/progress"
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/transfer"
)

// copyFlags are the flags of copy (and of pull and push later).
type copyFlags struct {
	foreign      string
	foreignAllow []string
	rewrites     []string
	platforms    []string
	jobs         int
	connections  int
	json         bool
	referrers    bool // copy and sync only (registerReferrers)
}

func (f *copyFlags) register(cmd *cobra.Command, defaultForeign string) {
	fl := cmd.Flags()
	fl.StringVar(&f.foreign, "foreign", defaultForeign, "foreign-layer policy: keep (leave them at their urls), include (copy their bytes), localize (copy and make them ordinary layers); default keep for registries, include for local files")
	fl.StringArrayVar(&f.foreignAllow, "foreign-allow", nil, "regular expression matched against a foreign-layer URL's SCHEME://HOST[:PORT]/PATH, allowing it although it points at a loopback or private address; only a pattern containing '@' allows a URL with a user part (repeatable)")
	fl.StringArrayVar(&f.rewrites, "foreign-rewrite-urls", nil, "FROM=TO: rewrite foreign-layer url prefixes, e.g. to an internal mirror (repeatable; with --foreign keep)")
	fl.StringArrayVar(&f.platforms, "platform", nil, "copy only these platforms of an index: os/arch[/variant][:os.version|ltsc2019|ltsc2022|ltsc2025][:latest-ubr], or all (repeatable)")
	fl.IntVar(&f.jobs, "jobs", 4, "blobs transferred in parallel")
	fl.IntVar(&f.connections, "foreign-connections", 4, "connections fetching one large foreign blob from its url at once, in ranges spooled to temporary files (1: one connection, no spool)")
	fl.BoolVar(&f.json, "json", false, "print a JSON summary on stdout instead of the reference; on failure, a JSON object with the error")
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			err := run(cmd, args)
			if err != nil && f.json {
				_ = printJSONTo(cmd.OutOrStdout(), errorJSON(err))
			}
			return err
		}
	}
}

// jsonError is a failure as --json prints it on stdout, so that a script
// reading stdout gets an object either way; stderr still has the message.
type jsonError struct {
	Error    string `json:"error"`
	ExitCode int    `json:"exitCode"`
	Hint     string `json:"hint,omitempty"`
}

func errorJSON(err error) jsonError {
	return jsonError{Error: message(err), ExitCode: ExitCode(err), Hint: hint(err)}
}

// registerReferrers adds --referrers, for the commands that copy between
// registries and OCI layouts.
func (f *copyFlags) registerReferrers(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.referrers, "referrers", false, "also copy the referrers (signatures, SBOMs, attestations) of every manifest copied, recursively: through the referrers API or the sha256-<hex> tag schema, or an OCI layout's index.json")
}

// options turns the flags, and the global --stall-timeout and
// --retry-delay, into transfer options; errors are usage errors. Without
// --foreign, a local destination (local set) gets include (a layout or
// archive that lacks the base layers is useless across an air gap) and a
// registry keep.
func (f *copyFlags) options(g *globals, local bool) ([]transfer.Option, error) {
	policy := f.foreign
	if policy == "" {
		policy = "keep"
		if local {
			policy = "include"
		}
	}
	pol, err := transfer.ParseForeignPolicy(policy)
	if err != nil {
		return nil, usageErr(err)
	}
	fetcher, err := g.open.Fetcher(f.foreignAllow, max(f.connections, 1))
	if err != nil {
		return nil, usageErr(err)
	}
	opts := append(g.open.Network().TransferOptions(), transfer.WithForeign(pol), transfer.WithFetcher(fetcher), transfer.WithJobs(f.jobs))
	for _, s := range f.platforms {
		spec, err := platform.ParseSpec(s)
		if err != nil {
			return nil, usageErr(err)
		}
		opts = append(opts, transfer.WithPlatforms(spec))
	}
	for _, s := range f.rewrites {
		rw, err := opener.RewriteURLs(s)
		if err != nil {
			return nil, usageErr(err)
		}
		opts = append(opts, rw)
	}
	if f.jobs < 1 {
		return nil, usageErr(fmt.Errorf("--jobs must be at least 1, got %d", f.jobs))
	}
	if f.referrers {
		opts = append(opts, transfer.WithReferrers())
	}
	return opts, nil
}

func newCopyCmd(g *globals) *cobra.Command {
	var f copyFlags
	cmd := &cobra.Command{
		Use:   "copy SRC DST",
		Short: "Copy an image or a whole index between locations",
		Long: `Copy an image, or a multi-platform index with every platform, from SRC to DST.

Locations: HOST[:PORT]/REPO[:TAG|@DIGEST] (optionally docker://),
oci:DIR[:TAG|@DIGEST], oci-archive:FILE[:TAG], docker-archive:FILE[:REPO:TAG],
dir:DIR (skopeo's dir: layout, one image).

Blobs stream and are verified; blobs already at DST are skipped; blobs in
another repository of the same registry are mounted. Blobs are written
first, then each manifest, then the index, then the tag: a failed copy
leaves no tag at DST. The last line on stdout is DST@sha256:<digest>.`,
		Example: `  ferry copy mcr.microsoft.com/windows/servercore:ltsc2022 localhost:5000/servercore:ltsc2022
  ferry copy --foreign localize --platform ltsc2019 SRC DST`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.runCopy(cmd, args[0], args[1], &f)
		},
	}
	f.register(cmd, "")
	f.registerReferrers(cmd)
	return cmd
}

func (g *globals) runCopy(cmd *cobra.Command, srcArg, dstArg string, f *copyFlags) error {
	srcLoc, err := g.parseLocation(srcArg)
	if err != nil {
		return err
	}
	dstLoc, err := g.parseLocation(dstArg)
	if err != nil {
		return err
	}
	return g.copyLocations(cmd, srcLoc, dstLoc, nil, f)
}

// copyLocations copies srcLoc to dstLoc and prints the outcome; src, when
// not nil, is srcLoc already open (and is closed here).
func (g *globals) copyLocations(cmd *cobra.Command, srcLoc, dstLoc location.Location, src store.Source, f *copyFlags, extra ...transfer.Option) error {
	ctx := cmd.Context()
	if src != nil {
		defer src.Close()
	}
	opts, err := f.options(g, dstLoc.IsLocal())
	if err != nil {
		return err
	}
	opts = append(opts, extra...)
	mode, err := progress.ParseMode(g.progress)
	if err != nil {
		return usageErr(err)
	}
	if src == nil {
		if src, err = g.open.Source(ctx, srcLoc); err != nil {
			return err
		}
		defer src.Close()
	}
	dst, err := g.open.Target(ctx, dstLoc, src)
	if err != nil {
		return err
	}
	return g.copyAndReport(ctx, src, dst, dstLoc.Raw, opts, mode, f)
}

// copyAndReport copies src to dst (and closes dst) and prints the outcome:
// the rewritten digests and summary on stderr, DST@DIGEST (dstName as the
// user wrote DST) or the JSON summary on stdout.
func (g *globals) copyAndReport(ctx context.Context, src store.Source, dst store.Target, dstName string, opts []transfer.Option, mode progress.Mode, f *copyFlags) error {
	rep := progress.New(g.stderr, mode)
	opts = append(opts, transfer.WithEvents(rep.Event))
	res, err := transfer.Copy(ctx, src, dst, opts...)
	rep.Close()
	if err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	for _, rw := range res.Rewritten {
		fmt.Fprintf(g.stderr, "%s -> %s\n", rw.Old, rw.New)
	}
	return g.report(f.json, dstName, res.Written.Digest, res, func() {
		if mode != progress.None {
			g.summary(res)
		}
	})
}

// summary prints a copy's counts and time on stderr.
func (g *globals) summary(res *transfer.Result) {
	fmt.Fprintf(g.stderr, "%s, in %.1fs\n", blobCounts(res), res.Seconds)
}

// blobCounts is the counts of a summary line: what was copied, skipped,
// mounted and kept foreign.
func blobCounts(res *transfer.Result) string {
	return fmt.Sprintf("copied %s (%s), skipped %d, mounted %d, foreign kept %d",
		plural(res.BlobsCopied, "blob"), progress.Human(res.Bytes), res.BlobsSkipped, res.BlobsMounted, res.ForeignKept)
}

func printJSON(g *globals, v any) error { return printJSONTo(g.stdout, v) }

func printJSONTo(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
