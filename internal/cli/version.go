package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/version"
)

// newVersionCmd is `ferry version [--json]`: which ferry this is, read
// from the binary's build information.
func newVersionCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print ferry's version, commit, build date, Go version and platform",
		Long: `Print ferry's version (the module version of a release or go install build,
"devel" otherwise), the commit it was built from (with -dirty for uncommitted
changes), that commit's date, the Go version and the platform, all from the
build information the Go toolchain embeds. ferry --version prints the same line.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			in := version.Get()
			if asJSON {
				return printJSON(g, in)
			}
			_, err := fmt.Fprintln(g.stdout, in)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"version", "commit", "modified", "date", "goVersion", "platform"} as JSON`)
	return cmd
}
