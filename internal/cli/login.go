package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/auth"
)

func newLoginCmd(g *globals) *cobra.Command {
	var user, password string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login HOST -u USER --password-stdin",
		Short: "Log in to a registry (stored as docker login stores it)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if password != "" && passwordStdin {
				return usageErr(fmt.Errorf("--password and --password-stdin cannot be used together"))
			}
			if passwordStdin {
				p, err := readPassword(cmd.InOrStdin())
				if err != nil {
					return err
				}
				password = p
			} else if password != "" {
				fmt.Fprintln(g.stderr, "WARNING! Using --password via the command line is insecure. Use --password-stdin.")
			}
			if user == "" || password == "" {
				return usageErr(fmt.Errorf("login needs -u USER and --password-stdin"))
			}
			if err := g.open.Login(cmd.Context(), args[0], user, password); err != nil {
				return err
			}
			fmt.Fprintln(g.stderr, "Login Succeeded")
			return nil
		},
	}
	cmd.Flags().StringVarP(&user, "username", "u", "", "user name")
	cmd.Flags().StringVarP(&password, "password", "p", "", "password (prefer --password-stdin)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	return cmd
}

func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func newLogoutCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "logout HOST",
		Short: "Remove the stored credentials for a registry",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := auth.Logout(args[0])
			if errors.Is(err, auth.ErrNotLoggedIn) {
				// As docker logout: nothing to remove is not a failure.
				fmt.Fprintf(g.stderr, "Not logged in to %s\n", args[0])
				return nil
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "Removed login credentials for %s\n", args[0])
			return nil
		},
	}
}
