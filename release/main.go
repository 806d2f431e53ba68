// Command release builds ferry's release files from one commit:
//
//	go run ./release --snapshot --out DIR [--targets linux/amd64,windows/amd64]
//
// It clones the checkout's HEAD into a temporary directory (so that the
// build sees exactly the commit, with the Go toolchain's VCS stamping, which
// needs a .git directory and so does not work in a git worktree), builds
// ferry with -trimpath and CGO off for windows/amd64, windows/arm64 (zip),
// linux/amd64, linux/arm64, darwin/amd64 and darwin/arm64 (tar.gz), and
// writes into DIR:
//
//	ferry_VERSION_OS_ARCH.zip|tar.gz   ferry, README.md, CHANGELOG.md,
//	                                   completions/ (bash, zsh, fish,
//	                                   PowerShell), man/man1/*.1
//	ferry_VERSION_OS_ARCH.sbom.cdx.json  a CycloneDX SBOM of the binary
//	SHA256SUMS                         sha256sum's format, over all of them
//
// The version is never stamped by hand (no -ldflags -X): the Go toolchain
// records the module version in the binary — the tag (v1.2.3) when HEAD
// carries one, otherwise a pseudo-version of the commit
// (v0.0.0-20261207022820-0096675abcde) — and ferry version reads it back.
// Without --snapshot, HEAD must carry a vX.Y.Z tag.
//
// Two runs on the same commit write byte-identical files: the binaries are
// reproducible Go builds (-trimpath, the commit's time as vcs.time), and the
// archives are written here with sorted entries, the commit's time as every
// mtime, uid/gid 0, fixed modes, gzip without name or time and zip without
// extra timestamp fields.
//
// Why not GoReleaser: it is not on this machine nor in CI, and installing it
// means go install of a large module graph (or a download from its own
// site) on every CI run, for what is here a few hundred lines; and the
// archives' bytes stay under this program's control. The SBOM is written by
// sbom.go from the binary's embedded module list (debug/buildinfo, what
// go version -m prints), not by cyclonedx-gomod, for the same reason.
//
// `go run ./release image --dist DIR (--oci LAYOUT | --push REF)` builds
// ferry's container image from the release directory's Linux archives:
// see image.go.
//
// `go run ./release docs --out DIR --date UNIX` writes the completions and
// man pages of the command tree it is built from; the release runs it
// inside the clone, so that they describe the commit being released.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/platform"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "release: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "docs" {
		fs := flag.NewFlagSet("release docs", flag.ContinueOnError)
		out := fs.String("out", "", "directory for completions/ and man/")
		date := fs.Int64("date", 0, "the man pages' date, seconds since 1970")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *out == "" {
			return fmt.Errorf("docs: --out is required")
		}
		return writeDocs(*out, time.Unix(*date, 0).UTC())
	}
	if len(args) > 0 && args[0] == "image" {
		return runImage(ctx, args[1:])
	}
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	var o options
	fs.BoolVar(&o.snapshot, "snapshot", false, "release HEAD whether or not it carries a version tag")
	fs.StringVar(&o.out, "out", "", "directory to write the release files into (created; must be empty)")
	targets := fs.String("targets", strings.Join(allTargets, ","), "os/arch pairs to build, comma-separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.out == "" {
		return fmt.Errorf("--out is required")
	}
	for _, t := range strings.Split(*targets, ",") {
		if !knownTarget(t) {
			return fmt.Errorf("--targets: %q is not one of %s", t, strings.Join(allTargets, ", "))
		}
		o.targets = append(o.targets, t)
	}
	return release(ctx, o)
}

// allTargets are the platforms a release builds.
var allTargets = []string{"windows/amd64", "windows/arm64", "linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"}

func knownTarget(t string) bool {
	for _, a := range allTargets {
		if a == t {
			return true
		}
	}
	return false
}

// unixString is a Unix time as a decimal string.
func unixString(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// runImage parses the image mode's flags and builds the image.
func runImage(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("release image", flag.ContinueOnError)
	var o imageOptions
	fs.StringVar(&o.dist, "dist", "", "the release directory (what --out wrote) holding the linux/amd64 and linux/arm64 archives")
	fs.StringVar(&o.oci, "oci", "", "write the image into this OCI layout directory, tagged with the version")
	fs.StringVar(&o.push, "push", "", "push the image to this registry reference")
	fs.StringVar(&o.caCerts, "ca-certs", "/etc/ssl/certs/ca-certificates.crt", "the CA bundle to install at /etc/ssl/certs/ca-certificates.crt")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.dist == "" {
		return fmt.Errorf("image: --dist is required")
	}
	img, err := buildImage(ctx, o)
	if err != nil {
		return err
	}
	for i, p := range img.platforms {
		fmt.Fprintf(os.Stderr, "release: %s %s, SBOM %s\n", platform.Format(p.Platform), p.Digest, img.sboms[i].Digest)
	}
	fmt.Printf("%s@%s\n", img.ref, img.index.Digest)
	return nil
}
