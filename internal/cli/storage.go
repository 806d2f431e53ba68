package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/internal/regstorage"
	"github.com/ferry-dev/ferry/opener"
	"github.com/ferry-dev/ferry/progress"
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/transfer"
)

func newStorageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "storage",
		Short: "Work offline on a docker/registry storage root: import, fsck, gc",
		Long: `Work offline on a docker/registry storage root (the directory a
distribution registry, docker/registry, Harbor or ferry serve keeps its images
in: ROOT/docker/registry/v2/...), with no registry running. Writes go through
distribution's own storage code, so the result is what the registry itself
would have written.

import and gc refuse to run while a ferry serve holds the root.`,
	}
	cmd.AddCommand(newStorageImportCmd(g), newStorageFsckCmd(g), newStorageGCCmd(g))
	return cmd
}

// rootFlag registers the --root flag every storage command needs.
func rootFlag(cmd *cobra.Command, root *string) {
	cmd.Flags().StringVar(root, "root", "", "the storage root (the directory holding docker/registry/v2); required")
}

// needRoot checks --root was given.
func needRoot(cmd *cobra.Command, root string) error {
	if root == "" {
		return usageErr(fmt.Errorf("%s: --root ROOT is required", cmd.CommandPath()))
	}
	return nil
}

// quietRegistryLog keeps distribution's info-level storage log (one line
// per blob deleted or linked) off the terminal.
func quietRegistryLog() { regstorage.QuietLog() }

func newStorageImportCmd(g *globals) *cobra.Command {
	var (
		f    copyFlags
		root string
	)
	cmd := &cobra.Command{
		Use:   "import --root ROOT SRC NAME[:TAG]",
		Short: "Import an image from any location into a storage root, offline",
		Long: `Import the image or index SRC names (a registry reference, oci:, oci-archive: or
docker-archive:) into the repository NAME of the storage root ROOT and tag it
TAG (latest when omitted). ROOT may be missing or empty: a new root is
started.

Blobs stream into distribution's blob store, which checks their digests;
manifests go through its manifest service, which checks that what they
reference is present; the tag comes last. Foreign layers follow --foreign
(keep by default, as for a registry: their URLs must be http or https).
The last line on stdout is ROOT/NAME:TAG@sha256:<digest>.`,
		Example: `  ferry storage import --root /var/lib/registry oci:./servercore:ltsc2022 windows/servercore:ltsc2022`,
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needRoot(cmd, root); err != nil {
				return err
			}
			return g.runStorageImport(cmd, root, args[0], args[1], &f)
		},
	}
	rootFlag(cmd, &root)
	f.register(cmd, "keep")
	return cmd
}

func (g *globals) runStorageImport(cmd *cobra.Command, rootDir, srcArg, nameArg string, f *copyFlags) error {
	ctx := cmd.Context()
	name, tag, err := opener.ParseRootName(nameArg)
	if err != nil {
		return usageErr(err)
	}
	srcLoc, err := g.parseLocation(srcArg)
	if err != nil {
		return err
	}
	// A storage root is served as a registry: registry defaults.
	opts, err := f.options(g, false)
	if err != nil {
		return err
	}
	src, err := g.open.Source(ctx, srcLoc)
	if err != nil {
		return err
	}
	defer src.Close()
	return g.copyIntoRoot(cmd, src, rootDir, "ferry storage import", name, tag, opts, f)
}

// copyIntoRoot copies src into the repository name:tag of the storage root
// rootDir (started when missing or empty), holding the root's lock as
// holder, and prints the outcome as copy does.
func (g *globals) copyIntoRoot(cmd *cobra.Command, src store.Source, rootDir, holder, name, tag string, opts []transfer.Option, f *copyFlags) error {
	ctx := cmd.Context()
	mode, err := progress.ParseMode(g.progress)
	if err != nil {
		return usageErr(err)
	}
	quietRegistryLog()
	defer g.open.Close() // the root, after the target
	dst, err := g.open.RootTarget(ctx, rootDir, holder, name, tag)
	if err != nil {
		return err
	}
	return g.copyAndReport(ctx, src, dst, store.NameOf(dst), opts, mode, f)
}

func newStorageFsckCmd(g *globals) *cobra.Command {
	var (
		root   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "fsck --root ROOT",
		Short: "Check a storage root: blob contents, links, tagged images",
		Long: `Check a storage root, reading only: every blob's content hashes to its name;
every link file points at an existing blob; every tag's manifest parses and
its config and layers (foreign layers aside), or an index's manifests, are
linked in its repository and present. Unfinished uploads are listed with
their sizes; they are not problems (storage gc removes old ones).

Prints a table of problems and exits 1 when there are any; prints a one-line
summary and exits 0 when there are none.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needRoot(cmd, root); err != nil {
				return err
			}
			rep, err := opener.Fsck(cmd.Context(), root)
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(g, rep); err != nil {
					return err
				}
			} else if rep.OK() {
				fmt.Fprintf(g.stdout, "%s: ok: %d blobs (%s) hashed, %d repositories, %d tags, %d links checked\n",
					root, rep.Blobs, progress.Human(rep.Bytes), rep.Repositories, rep.Tags, rep.Links)
				g.printUploads(rep)
			} else {
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "PATH (under %s)\tDIGEST\tPROBLEM\n", opener.DataDir)
				for _, p := range rep.Problems {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Path, orDash(p.Digest), p.What)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				g.printUploads(rep)
			}
			if !rep.OK() {
				return &ExitError{Code: 1, Err: fmt.Errorf("%s: %s found", root, plural(len(rep.Problems), "problem"))}
			}
			return nil
		},
	}
	rootFlag(cmd, &root)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// printUploads lists the root's unfinished uploads, which fsck reports
// without counting them as problems.
func (g *globals) printUploads(rep *opener.FsckReport) {
	if len(rep.Uploads) == 0 {
		return
	}
	fmt.Fprintf(g.stdout, "%d unfinished uploads hold %s (storage gc removes those older than --upload-age, default %s):\n", len(rep.Uploads), progress.Human(rep.UploadBytes), opener.DefaultUploadAge)
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	for _, u := range rep.Uploads {
		fmt.Fprintf(tw, "  %s\t%s\t%s\tstarted %s\n", u.Repository, u.ID, progress.Human(u.Size), u.StartedAt.UTC().Format(time.RFC3339))
	}
	_ = tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newStorageGCCmd(g *globals) *cobra.Command {
	var (
		root, configFile       string
		dryRun, untagged, asJS bool
		stopped                bool
		uploadAge              time.Duration
	)
	cmd := &cobra.Command{
		Use:   "gc (--root ROOT | --config FILE) [--dry-run] [--delete-untagged]",
		Short: "Remove the blobs no image references (distribution's mark and sweep)",
		Long: `Run distribution's garbage collector (mark and sweep) on a storage root: mark
every manifest and what it references, then remove the blobs and layer links
nothing marked. Prints each blob removed (or, with --dry-run, that would be)
and the bytes freed.

Referrers follow their subject: an untagged signature, SBOM or attestation
whose subject is kept stays (with its own referrers and what they reference);
one whose subject is gone (deleted through ferry serve --delete, which leaves
referrers listed until gc) is removed, with or without --delete-untagged.
A tagged referrer stays.

With --delete-untagged, manifests no tag points at are removed too, unless a
kept index lists them or they are referrers of a kept manifest.

Content pushed by a sha512 digest is stored once, by its sha256 digest, with
alias links; they are kept and removed together.

Unfinished uploads (under each repository's _uploads: killed or abandoned
pushes) that began more than --upload-age ago are removed too.

Refuses to run while a ferry serve holds the root: collecting garbage under a
live registry loses data. Stop other registries serving ROOT yourself.

With --config, the storage is the one a registry configuration file names:
a filesystem root as with --root, or shared storage such as an S3 bucket.
Several replicas may serve shared storage from other hosts, which no lock
can see, so gc refuses unless --i-stopped-all-replicas says they are all
stopped, or every running ferry serve replica announces (in its marker under
ferry/replicas) that it runs read-only; it refuses in any case while a
running replica accepts writes.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if configFile != "" && root != "" {
				return usageErr(fmt.Errorf("%s: give --root or --config, not both", cmd.CommandPath()))
			}
			if configFile == "" && root == "" {
				return usageErr(fmt.Errorf("%s: --root ROOT is required, or --config FILE for the storage a registry configuration names", cmd.CommandPath()))
			}
			quietRegistryLog()
			r, err := g.openGCRoot(cmd, root, configFile, stopped)
			if err != nil {
				return err
			}
			defer r.Close()
			if uploadAge < 0 {
				return usageErr(fmt.Errorf("%s: --upload-age must not be negative", cmd.CommandPath()))
			}
			rep, err := r.GC(cmd.Context(), dryRun, untagged, uploadAge)
			if err != nil {
				return err
			}
			if asJS {
				return printJSON(g, rep)
			}
			g.printGC(rep)
			return nil
		},
	}
	rootFlag(cmd, &root)
	f := cmd.Flags()
	f.BoolVar(&dryRun, "dry-run", false, "list what would be removed; remove nothing")
	f.BoolVar(&untagged, "delete-untagged", false, "also remove manifests no tag points at (referrers of kept manifests stay)")
	f.BoolVar(&asJS, "json", false, "print the report as JSON")
	f.StringVar(&configFile, "config", "", "a registry configuration file naming the storage (filesystem, or shared storage such as s3)")
	f.BoolVar(&stopped, "i-stopped-all-replicas", false, "with shared storage: every registry writing to it is stopped")
	f.DurationVar(&uploadAge, "upload-age", opener.DefaultUploadAge, "also remove unfinished uploads (killed or abandoned pushes) that began longer ago than this; 0 removes them all")
	return cmd
}

func (g *globals) printGC(rep *opener.GCReport) {
	verb := "removed"
	if rep.DryRun {
		verb = "would remove"
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	for _, b := range rep.Blobs {
		fmt.Fprintf(tw, "%s blob\t%s\t%s\n", verb, b.Digest, progress.Human(b.Size))
	}
	for _, l := range rep.Links {
		fmt.Fprintf(tw, "%s %s link\t%s\t%s\n", verb, l.Kind, l.Digest, l.Repository)
	}
	for _, u := range rep.Uploads {
		fmt.Fprintf(tw, "%s upload\t%s\t%s\t%s, started %s\n", verb, u.ID, u.Repository, progress.Human(u.Size), u.StartedAt.UTC().Format(time.RFC3339))
	}
	_ = tw.Flush()
	if rep.DryRun {
		fmt.Fprintf(g.stdout, "dry run: would remove %d blobs, %d links and %d uploads, freeing %s; nothing removed\n", len(rep.Blobs), len(rep.Links), len(rep.Uploads), progress.Human(rep.BytesFreed))
		return
	}
	fmt.Fprintf(g.stdout, "removed %d blobs, %d links and %d uploads, freed %s\n", len(rep.Blobs), len(rep.Links), len(rep.Uploads), progress.Human(rep.BytesFreed))
}
