package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/ferry-dev/ferry/internal/cli"
)

// completionFiles are the shell completion scripts a release ships, by
// file name under completions/, as the shells' packagers name them.
var completionFiles = map[string]func(*cobra.Command, io.Writer) error{
	"ferry.bash": func(c *cobra.Command, w io.Writer) error { return c.GenBashCompletionV2(w, true) },
	"_ferry":     func(c *cobra.Command, w io.Writer) error { return c.GenZshCompletion(w) },
	"ferry.fish": func(c *cobra.Command, w io.Writer) error { return c.GenFishCompletion(w, true) },
	"ferry.ps1":  func(c *cobra.Command, w io.Writer) error { return c.GenPowerShellCompletionWithDesc(w) },
}

// writeDocs writes completions/ and man/man1/ for ferry's command tree
// into dir; date is the man pages' date (the commit's, for a release),
// so that the pages do not change from one build to the next.
func writeDocs(dir string, date time.Time) error {
	root := cli.NewRootCmd(io.Discard, io.Discard)
	root.DisableAutoGenTag = true // its footer carries the build's date
	comp := filepath.Join(dir, "completions")
	if err := os.MkdirAll(comp, 0o755); err != nil {
		return err
	}
	for name, gen := range completionFiles {
		var b bytes.Buffer
		if err := gen(root, &b); err != nil {
			return fmt.Errorf("completion %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(comp, name), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	man := filepath.Join(dir, "man", "man1")
	if err := os.MkdirAll(man, 0o755); err != nil {
		return err
	}
	header := &doc.GenManHeader{Title: "FERRY", Section: "1", Date: &date, Source: "ferry", Manual: "ferry manual"}
	if err := doc.GenManTree(root, header, man); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	return nil
}
