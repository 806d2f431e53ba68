package cli

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/platform"
	"github.com/ferry-dev/ferry/progress"
	"github.com/ferry-dev/ferry/syncer"
	"github.com/ferry-dev/ferry/transfer"
)

// blobJobs is how many blobs each image of a sync moves at once, as copy
// does by default (syncer.BlobsPerImage).
const blobJobs = syncer.BlobsPerImage

func newSyncCmd(g *globals) *cobra.Command {
	var f copyFlags
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "sync CONFIG DEST",
		Short: "Mirror the repositories and tags a skopeo sync YAML file lists",
		Long: `Mirror every image CONFIG lists — skopeo sync's YAML: a key per source
registry with images (a tag list, or [] for every tag),
images-by-tag-regex, images-by-semver, credentials, tls-verify, cert-dir;
plus ferry's keys platforms, foreign, referrers and keep-ubr, per registry or under
repositories: NAME: — to DEST:

  HOST[/PREFIX]      each image under its full repository path
                     (mcr.microsoft.com/windows/servercore:ltsc2022 →
                     HOST/PREFIX/windows/servercore:ltsc2022)
  oci-archive:FILE   one bundle, as bundle create writes it
  oci:DIR            one OCI layout, images named by full reference

The run is planned first (tags listed, digests resolved, filters applied):
an image whose destination already has the digest is skipped without
touching a blob. Up to --jobs images are copied at once (16 by default),
each moving up to 4 blobs at once, with at most --jobs blobs (4 or more)
streaming across them, the largest first (an image waiting for a blob
another image is moving holds none); each blob moves at most once in a
run (later images mount it from the destination repository that
received it). A failing image does not stop the others: each failure is
named at the end and the exit code is 1.`,
		Example: `  ferry sync windows.yaml registry.internal:5000/mirror
  ferry sync --dry-run windows.yaml registry.internal:5000/mirror
  ferry sync --foreign include windows.yaml oci-archive:windows.tar`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return usageErr(err)
			}
			cfg, err := syncer.Parse(args[0], data)
			if err != nil {
				return usageErr(err)
			}
			for _, w := range cfg.Warnings {
				fmt.Fprintf(g.stderr, "ferry: warning: %s\n", w)
			}
			opts := syncer.Options{Opener: g.open, Jobs: f.jobs, DryRun: dryRun, Referrers: f.referrers}
			if f.jobs < 1 {
				return usageErr(fmt.Errorf("--jobs must be at least 1, got %d", f.jobs))
			}
			if f.foreign != "" {
				pol, err := transfer.ParseForeignPolicy(f.foreign)
				if err != nil {
					return usageErr(err)
				}
				opts.Foreign = &pol
			}
			for _, s := range f.platforms {
				spec, err := platform.ParseSpec(s)
				if err != nil {
					return usageErr(err)
				}
				opts.Platforms = append(opts.Platforms, spec)
			}
			// The copy options but the policy and platforms, which the
			// file may set per registry and repository.
			rest := f
			rest.platforms, rest.referrers = nil, false
			if opts.Copy, err = rest.options(g, false); err != nil {
				return err
			}
			opts.Copy = append(opts.Copy, transfer.WithJobs(blobJobs))
			mode, err := progress.ParseMode(g.progress)
			if err != nil {
				return usageErr(err)
			}
			if !f.json {
				opts.Done = func(img *syncer.Image) { g.syncLine(img, dryRun) }
			}
			rep, err := syncer.Run(cmd.Context(), cfg, args[1], opts)
			if rep == nil {
				return err
			}
			for _, w := range rep.Warnings {
				fmt.Fprintf(g.stderr, "ferry: warning: %s\n", w)
			}
			if f.json {
				if jerr := printJSON(g, rep); jerr != nil {
					return jerr
				}
			} else if mode != progress.None {
				t := rep.Totals
				fmt.Fprintf(g.stderr, "%d images: %d copied (%s), %d skipped, %d failed, in %.1fs\n",
					t.Images, t.Copied, progress.Human(t.Bytes), t.Skipped, t.Failed, t.Seconds)
			}
			if errors.Is(err, syncer.ErrImagesFailed) {
				var lines []string
				for _, img := range rep.Images {
					if img.Status == syncer.Failed {
						lines = append(lines, fmt.Sprintf("  %s: %s", img.Source, img.Error))
					}
				}
				return fmt.Errorf("sync: %w:\n%s", err, strings.Join(lines, "\n"))
			}
			return err
		},
	}
	f.register(cmd, "")
	f.registerReferrers(cmd)
	jobs := cmd.Flags().Lookup("jobs")
	jobs.Usage = "images copied at once; at most max(N, 4) blobs stream at once across them"
	jobs.DefValue = strconv.Itoa(syncer.DefaultJobs)
	f.jobs = syncer.DefaultJobs
	cmd.Flags().Lookup("platform").Usage = "copy only these platforms of each index, unless the file says otherwise: " + strings.TrimPrefix(cmd.Flags().Lookup("platform").Usage, "copy only these platforms of an index: ")
	cmd.Flags().Lookup("json").Usage = "print a JSON report on stdout: per image source, destination, digest, status, bytes; and totals"
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan (each source → destination, digest, why skipped) and write nothing")
	return cmd
}

// syncLine prints one line per image on stdout as it is done (or, dry,
// planned): its status, source, destination and digest.
func (g *globals) syncLine(img *syncer.Image, dry bool) {
	switch img.Status {
	case syncer.Failed:
		fmt.Fprintf(g.stdout, "failed  %s: %s\n", img.Source, img.Error)
	case syncer.Skipped:
		fmt.Fprintf(g.stdout, "skipped %s -> %s@%s (up to date)\n", img.Source, img.Destination, img.Digest)
	default:
		if dry {
			why := ""
			if img.Reason != "" {
				why = " (" + img.Reason + ")"
			}
			fmt.Fprintf(g.stdout, "copy    %s -> %s@%s%s\n", img.Source, img.Destination, img.Digest, why)
			return
		}
		fmt.Fprintf(g.stdout, "copied  %s -> %s@%s (%s)\n", img.Source, img.Destination, img.Digest, progress.Human(img.Bytes))
	}
}
