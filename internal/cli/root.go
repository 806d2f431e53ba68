// Package cli holds ferry's commands, one file each. A command only parses
// flags, turns them into library options, makes one library call and
// prints the result; it never holds logic the library could.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/internal/redact"
	stallwatch "github.com/ferry-dev/ferry/internal/stall"
	"github.com/ferry-dev/ferry/location"
	"github.com/ferry-dev/ferry/opener"
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/version"
)

// ExitError carries a process exit code.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// usageErr marks err as bad input: exit code 2.
func usageErr(err error) error { return &ExitError{Code: 2, Err: err} }

// ExitCode maps an error to the process exit code: 0 for nil, 2 for bad
// usage (unparsable references, unknown prefixes, bad flags), 130 when
// interrupted, 1 otherwise.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	if errors.Is(err, location.ErrInvalid) || errors.Is(err, location.ErrUnknownTransport) {
		return 2
	}
	if errors.Is(err, context.Canceled) {
		return 130
	}
	if isUnknownCommand(err) {
		return 2
	}
	return 1
}

// isUnknownCommand reports whether err is cobra's "unknown command" for
// an argument that names no command: bad input (cobra has no error type
// for it, only this text).
func isUnknownCommand(err error) bool {
	return strings.HasPrefix(err.Error(), "unknown command ")
}

// globals are the flags every command shares.
type globals struct {
	insecure bool
	progress string
	stall    time.Duration
	delay    time.Duration
	stdout   io.Writer
	stderr   io.Writer
	// open opens locations with the network the flags above describe; it
	// is set once the flags are parsed. Commands whose opener keeps
	// something open (resolved references, storage roots) close it.
	open *opener.Opener
}

// NewRootCmd returns the ferry command tree writing to the given streams.
func NewRootCmd(stdout, stderr io.Writer) *cobra.Command {
	return newRootCmd(&globals{stdout: stdout, stderr: stderr})
}

// newRootCmd returns the command tree whose flags fill g.
func newRootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "ferry",
		Short: "Move container images — Windows images and their foreign layers included — between registries, archives and registry storage",
		Long: `ferry moves container images between registries, OCI layouts, archives and
registry storage, with no Docker engine. Windows images and their foreign
(non-distributable) base layers are first-class: keep them foreign, include
their bytes, or localize them into ordinary layers.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.Get().String(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if g.stall < 0 || g.delay < 0 {
			return usageErr(fmt.Errorf("--%s and --%s must not be negative", stallFlag, retryDelayFlag))
		}
		g.open = opener.New(g.network())
		return nil
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErr(fmt.Errorf("%w (see '%s --help')", err, c.CommandPath()))
	})
	pf := root.PersistentFlags()
	pf.BoolVar(&g.insecure, "insecure", false, "allow plain HTTP to registries that are not on loopback")
	pf.StringVar(&g.progress, "progress", "auto", "progress output: auto, bars, plain or none")
	pf.DurationVar(&g.delay, retryDelayFlag, 0, "fixed wait between retries of a request or blob (default: exponential backoff)")
	pf.DurationVar(&g.stall, stallFlag, opener.DefaultStallTimeout, "abandon and retry a registry or foreign-URL request after this long without a byte moving (0: never)")

	root.AddCommand(
		newCopyCmd(g),
		newInspectCmd(g),
		newDigestCmd(g),
		newTagsCmd(g),
		newCatalogCmd(g),
		newDeleteCmd(g),
		newLoginCmd(g),
		newLogoutCmd(g),
		newServeCmd(g),
		newPullCmd(g),
		newPushCmd(g),
		newBundleCmd(g),
		newSyncCmd(g),
		newRebaseCmd(g),
		newVerifyCmd(g),
		newAppendCmd(g),
		newAssembleCmd(g),
		newIndexCmd(g),
		newStorageCmd(g),
		newVersionCmd(g),
	)
	// cobra's completion command (bash, zsh, fish, powershell), added now
	// rather than when the tree first runs, so that the README check and
	// the release's generator see it.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		refuseUnknownSubcommands(c)
	}
	return root
}

// refuseUnknownSubcommands makes each command group below the root (bundle,
// index, storage) answer an argument that names none of its commands with
// a usage error (exit 2), as the root does, rather than its help and exit
// 0; without arguments it still prints its help.
func refuseUnknownSubcommands(c *cobra.Command) {
	if !c.HasSubCommands() {
		return
	}
	for _, sub := range c.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if c.Runnable() {
		return
	}
	c.Args = cobra.ArbitraryArgs
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2 // cobra's default for the root
	}
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf("; did you mean %q?", s[0])
		}
		return usageErr(errors.New(msg))
	}
}

// Main runs ferry with args and returns the exit code.
func Main(ctx context.Context, args []string) int {
	root := NewRootCmd(os.Stdout, os.Stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	printErr(os.Stderr, err)
	return ExitCode(err)
}

// message is err as ferry prints it (on stderr, or in --json's error
// object): with the credentials of signed URLs hidden, since Go's HTTP
// errors quote a failed request's URL whole and a registry's redirect to
// its storage may be presigned.
func message(err error) string { return redact.Secrets(err.Error()) }

// printErr prints err, if any, and the hint for it on w.
func printErr(w io.Writer, err error) {
	if err == nil {
		return
	}
	fmt.Fprintf(w, "ferry: %s\n", message(err))
	if h := hint(err); h != "" {
		fmt.Fprintf(w, "ferry: hint: %s\n", h)
	}
}

// hint is advice for an error the user can act on with a flag, or "".
func hint(err error) string {
	if errors.Is(err, stallwatch.ErrStalled) {
		return stallwatch.Hint
	}
	if errors.Is(err, store.ErrForeignRefused) {
		return foreignRefusedHint
	}
	var te *transport.Error
	if !errors.As(err, &te) {
		return ""
	}
	host := "HOST"
	if te.Request != nil && te.Request.URL != nil && strings.HasPrefix(te.Request.URL.Path, "/v2/") {
		host = te.Request.URL.Host
	}
	if te.StatusCode == http.StatusUnauthorized {
		return fmt.Sprintf("log in with 'ferry login %s -u USER --password-stdin' (credentials are read as docker login stores them)", host)
	}
	if te.Request != nil && te.Request.Method == http.MethodDelete && (te.StatusCode == http.StatusMethodNotAllowed || hasCode(te, transport.UnsupportedErrorCode)) {
		return fmt.Sprintf("the registry at %s does not allow deleting; ferry serve allows it with --delete (distribution: storage.delete.enabled: true)", host)
	}
	return ""
}

// hasCode reports whether a registry error carries the diagnostic code.
func hasCode(te *transport.Error, code transport.ErrorCode) bool {
	for _, d := range te.Errors {
		if d.Code == code {
			return true
		}
	}
	return false
}

// foreignRefusedHint is the advice for a destination that refuses foreign
// layers: copy's --foreign (include helps only a registry that accepts the
// URLs but lacks the bytes; localize drops the URLs), or the registry's
// own allow list.
const foreignRefusedHint = "copy with --foreign localize (make them ordinary layers), or with --foreign include (store the base layers too) when the registry only lacks their bytes; or allow their URLs in the registry's configuration (distribution: validation.manifests.urls.allow; ferry serve: --foreign-urls-allow)"

// exactArgs is cobra.ExactArgs with exit code 2.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageErr(fmt.Errorf("%s: %w", cmd.CommandPath(), err))
		}
		return nil
	}
}

// minArgs is cobra.MinimumNArgs with exit code 2.
func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.MinimumNArgs(n)(cmd, args); err != nil {
			return usageErr(fmt.Errorf("%s: %w", cmd.CommandPath(), err))
		}
		return nil
	}
}
