package cli

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// readmeForm is one command form of the README's command table, such as
// "ferry pull REF PATH [--format oci|oci-archive|docker-archive]".
type readmeForm struct {
	text        string   // as written, for messages
	path        []string // the command path below ferry, alternatives expanded later
	flags       []string // flag names as written (--format, -t)
	positionals int      // required positional arguments
	variadic    bool     // the last positional repeats (REF...)
}

// readmeForms reads the forms out of README.md's "## Commands" table: the
// first cell of each row holds one or more `...` forms separated by " · ";
// a form that does not start with "ferry" continues the previous form's
// command ("`bundle list FILE`").
func readmeForms(t *testing.T, readme string) []string {
	t.Helper()
	_, after, ok := strings.Cut(readme, "\n## Commands\n")
	if !ok {
		t.Fatal("README.md has no ## Commands section")
	}
	if i := strings.Index(after, "\n#"); i >= 0 {
		after = after[:i]
	}
	code := regexp.MustCompile("`([^`]+)`")
	var forms []string
	for _, line := range strings.Split(after, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.TrimPrefix(line, "| ")
		// The first cell ends at the first unescaped '|'.
		end := regexp.MustCompile(`[^\\]\|`).FindStringIndex(first)
		if end == nil {
			t.Fatalf("README row without cells: %q", line)
		}
		for _, m := range code.FindAllStringSubmatch(first[:end[0]+1], -1) {
			forms = append(forms, strings.ReplaceAll(m[1], `\|`, "|"))
		}
	}
	if len(forms) == 0 {
		t.Fatal("README.md's command table has no forms")
	}
	return forms
}

// tokens splits a form into words, keeping a bracketed group ([--raw|--config],
// [--layer FILE|DIR]...) as the words inside it, marked optional.
type token struct {
	word     string
	optional bool
	repeats  bool
}

func tokenize(form string) []token {
	var out []token
	depth := 0
	for _, f := range strings.Fields(form) {
		opt := depth > 0 || strings.HasPrefix(f, "[")
		depth += strings.Count(f, "[") - strings.Count(f, "]")
		repeats := strings.HasSuffix(f, "...")
		w := strings.TrimSuffix(f, "...")
		if strings.HasPrefix(w, "[") {
			w = strings.TrimPrefix(w, "[")
		}
		if depth == 0 && strings.HasSuffix(w, "]") && !strings.Contains(w, "[") {
			w = strings.TrimSuffix(w, "]")
		}
		out = append(out, token{word: w, optional: opt, repeats: repeats})
	}
	return out
}

// lookupFlag finds a flag of cmd, its own or inherited, by "--name" or "-n".
func lookupFlag(cmd *cobra.Command, f string) *pflag.Flag {
	for _, fs := range []*pflag.FlagSet{cmd.LocalFlags(), cmd.InheritedFlags()} {
		if n, ok := strings.CutPrefix(f, "--"); ok {
			if fl := fs.Lookup(n); fl != nil {
				return fl
			}
		} else if n, ok := strings.CutPrefix(f, "-"); ok && len(n) == 1 {
			if fl := fs.ShorthandLookup(n); fl != nil {
				return fl
			}
		}
	}
	return nil
}

// checkForm checks one README form against the command tree: the command
// exists, every flag it names exists, and the command accepts the number
// of positional arguments shown. It returns the commands the form names.
func checkForm(root *cobra.Command, prev []string, form string) ([]*cobra.Command, []string, error) {
	toks := tokenize(form)
	var path []string
	if len(toks) > 0 && toks[0].word == "ferry" {
		toks = toks[1:]
	} else if len(prev) > 0 {
		path = prev[:1] // "bundle list FILE" after "ferry bundle create ...": the same parent
		if len(toks) > 0 && toks[0].word == prev[0] {
			toks = toks[1:]
		}
	}
	// The command path: words naming subcommands; "import|fsck|gc" names several.
	cmds := []*cobra.Command{root}
	if len(path) > 0 {
		c, _, err := root.Find(path)
		if err != nil || c == root {
			return nil, nil, fmt.Errorf("no command %q", strings.Join(path, " "))
		}
		cmds = []*cobra.Command{c}
	}
	for len(toks) > 0 && !toks[0].optional && regexp.MustCompile(`^[a-z][a-z0-9-]*(\|[a-z][a-z0-9-]*)*$`).MatchString(toks[0].word) {
		var next []*cobra.Command
		for _, c := range cmds {
			if !c.HasSubCommands() {
				return nil, nil, fmt.Errorf("%q: %s has no subcommand %q", form, c.CommandPath(), toks[0].word)
			}
			for _, name := range strings.Split(toks[0].word, "|") {
				sub, _, err := c.Find([]string{name})
				if err != nil || sub == c {
					return nil, nil, fmt.Errorf("%q: no command %q %q", form, c.CommandPath(), name)
				}
				next = append(next, sub)
			}
		}
		if len(cmds) == 1 && cmds[0] == root {
			path = []string{toks[0].word}
		}
		cmds, toks = next, toks[1:]
	}
	if len(cmds) == 1 && cmds[0] == root {
		return nil, nil, fmt.Errorf("%q names no command", form)
	}
	for _, cmd := range cmds {
		positionals, variadic := 0, false
		for i := 0; i < len(toks); i++ {
			w := toks[i].word
			if strings.HasPrefix(w, "-") {
				var fl *pflag.Flag
				for _, alt := range strings.Split(w, "|") {
					if fl = lookupFlag(cmd, alt); fl == nil {
						return cmds, path, fmt.Errorf("%q: %s has no flag %s", form, cmd.CommandPath(), alt)
					}
				}
				if fl.Value.Type() != "bool" && i+1 < len(toks) && !strings.HasPrefix(toks[i+1].word, "-") {
					i++ // the flag's value: FILE, oci|oci-archive|docker-archive
				}
				continue
			}
			if !toks[i].optional {
				positionals++
				variadic = variadic || toks[i].repeats
			}
		}
		if cmd.Args != nil {
			counts := []int{positionals}
			if variadic {
				counts = append(counts, positionals+2)
			}
			for _, n := range counts {
				if err := cmd.Args(cmd, make([]string, n)); err != nil {
					return cmds, path, fmt.Errorf("%q: %s does not take %d positional argument(s): %v", form, cmd.CommandPath(), n, err)
				}
			}
		}
		if !cmd.Runnable() || cmd.HasSubCommands() {
			return cmds, path, fmt.Errorf("%q: %s is a group of commands, not one", form, cmd.CommandPath())
		}
	}
	return cmds, path, nil
}

// TestReadmeCommandTable checks README.md's command table against the
// cobra tree, so that the two cannot drift apart: every form names a
// command that exists, with flags it has and the number of positional
// arguments it takes, and every command that runs is in the table.
func TestReadmeCommandTable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	root := NewRootCmd(io.Discard, io.Discard)
	documented := map[*cobra.Command]bool{}
	var prev []string
	for _, form := range readmeForms(t, string(b)) {
		cmds, path, err := checkForm(root, prev, form)
		if err != nil {
			t.Error(err)
		}
		if cmds != nil {
			prev = path
		}
		for _, c := range cmds {
			documented[c] = true
		}
	}
	var missing []string
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			if sub.Runnable() && !sub.HasSubCommands() && !documented[sub] {
				missing = append(missing, sub.CommandPath())
			}
			walk(sub)
		}
	}
	walk(root)
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("commands missing from README.md's command table: %s", strings.Join(missing, ", "))
	}
}

// TestReadmeCheckCatchesDrift: the checker itself refuses each kind of
// drift it is there to catch.
func TestReadmeCheckCatchesDrift(t *testing.T) {
	root := NewRootCmd(io.Discard, io.Discard)
	for form, want := range map[string]string{
		"ferry copy SRC DST --nope":            "no flag --nope",
		"ferry cpoy SRC DST":                   "no command",
		"ferry append BASE -t TARGET":          "positional",
		"ferry copy SRC":                       "positional",
		"ferry bundle frob FILE":               "no command",
		"ferry pull REF PATH [--format X\\|Y]": "",
		"ferry bundle create -o FILE REF...":   "",
	} {
		_, _, err := checkForm(root, nil, strings.ReplaceAll(form, `\|`, "|"))
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %v, want an error saying %q", form, err, want)
		}
	}
}
