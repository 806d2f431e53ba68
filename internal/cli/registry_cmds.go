package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/internal/redact"
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
				if shown := redact.URL(args[0]); shown != args[0] {
					// ggcr's error quotes the host, password and all.
					return usageErr(fmt.Errorf("%q is not a registry host: a host has no user:password@ (log in with ferry login)", shown))
				}
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
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "delete REF",
		Short: "Delete a tag (REPO:TAG) or a manifest (REPO@DIGEST)",
		Long: `By tag, REPO:TAG: remove that tag only. The manifest it points at, the
other tags on it and the indexes listing it stay. A registry that does
not delete tags (the distribution spec lets it answer 400 or 405) is
reported with the digest form to use instead; the manifest is never
deleted in the tag's place.

By digest, REPO@sha256:...: remove the manifest. The registry drops every
tag pointing at it, and an index listing it is left with an entry whose
manifest is gone. First, the tags and the tagged indexes of the
repository that point at it are listed on stdout ("tag REPO:TAG",
"index REPO:TAG DIGEST"); this reads every tag of the repository.

--dry-run prints what would go and deletes nothing. The registry must
allow deletes (ferry serve --delete; distribution's storage.delete.enabled).
Blobs stay until the registry's garbage collection.`,
		Example: `  ferry delete myreg/app:old            # the tag only
  ferry delete --dry-run myreg/app@sha256:4c1e...   # what points at the manifest
  ferry delete myreg/app@sha256:4c1e...             # the manifest, its tags with it`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.runDelete(cmd.Context(), args[0], dryRun)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be deleted and delete nothing")
	return cmd
}

func (g *globals) runDelete(ctx context.Context, ref string, dryRun bool) error {
	loc, err := g.parseLocation(ref)
	if err != nil {
		return err
	}
	repo, err := g.open.Repository(ctx, loc, !dryRun)
	if err != nil {
		return err
	}
	defer repo.Close()
	if _, byDigest := loc.Ref.(name.Digest); !byDigest {
		// By tag: only the tag goes.
		desc, err := repo.Resolve(ctx)
		if err != nil {
			return err
		}
		if dryRun {
			fmt.Fprintf(g.stdout, "tag %s\n", loc.Ref)
			fmt.Fprintf(g.stderr, "dry run: would delete the tag %s; the manifest %s stays; nothing deleted\n", loc.Ref, desc.Digest)
			return nil
		}
		if err := repo.Delete(ctx); err != nil {
			return err
		}
		fmt.Fprintf(g.stderr, "deleted the tag %s; the manifest %s stays\n", loc.Ref, desc.Digest)
		return nil
	}
	p, err := repo.Pointers(ctx)
	if err != nil {
		return err
	}
	repoName := loc.Ref.Context()
	for _, t := range p.Tags {
		fmt.Fprintf(g.stdout, "tag %s\n", repoName.Tag(t))
	}
	for _, i := range p.Indexes {
		fmt.Fprintf(g.stdout, "index %s %s\n", repoName.Tag(i.Tag), i.Digest)
	}
	what := fmt.Sprintf("the manifest %s", loc.Ref)
	if n := len(p.Tags); n > 0 {
		what += fmt.Sprintf(" and %s with it", plural(n, "tag"))
	}
	var dangling string
	if n := len(p.Indexes); n > 0 {
		keep := "keep"
		if dryRun {
			keep = "would keep"
		} else if n == 1 {
			keep = "keeps"
		}
		dangling = fmt.Sprintf("; %s listed above %s an entry whose manifest is gone", plural(n, "index"), keep)
	}
	if dryRun {
		fmt.Fprintf(g.stderr, "dry run: would delete %s%s; nothing deleted\n", what, dangling)
		return nil
	}
	if err := repo.Delete(ctx); err != nil {
		return err
	}
	fmt.Fprintf(g.stderr, "deleted %s%s\n", what, dangling)
	return nil
}
