package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/opener"
)

// openRepository opens the registry reference s, for deleting when push
// is set; other locations are usage errors (location.ErrInvalid).
func (g *globals) openRepository(ctx context.Context, s string, push bool) (opener.Repository, error) {
	loc, err := g.parseLocation(s)
	if err != nil {
		return nil, err
	}
	return g.open.Repository(ctx, loc, push)
}

func newTagsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "tags REPO",
		Short: "List the tags of a repository",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, err := g.openRepository(cmd.Context(), args[0], false)
			if err != nil {
				return err
			}
			tags, err := repo.Tags(cmd.Context())
			if err != nil {
				return err
			}
			for _, t := range tags {
				fmt.Fprintln(g.stdout, t)
			}
			return nil
		},
	}
}

func newCatalogCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "catalog HOST",
		Short: "List the repositories of a registry",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			host := strings.TrimSuffix(strings.TrimPrefix(args[0], "docker://"), "/")
			reg, err := g.open.Registry(host)
			if err != nil {
				return usageErr(fmt.Errorf("%q is not a registry host: %w", args[0], err))
			}
			repos, err := reg.Catalog(cmd.Context())
			if err != nil {
				return err
			}
			for _, r := range repos {
				fmt.Fprintln(g.stdout, r)
			}
			return nil
		},
	}
}

func newDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete REF",
		Short: "Delete the manifest a reference names (by digest: every tag pointing at it goes too)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, err := g.openRepository(cmd.Context(), args[0], true)
			if err != nil {
				return err
			}
			if err := repo.Delete(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "deleted %s\n", args[0])
			return nil
		},
	}
}
