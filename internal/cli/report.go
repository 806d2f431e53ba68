package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// report prints the outcome of a command that wrote a manifest or index
// with digest to name (the destination as the user wrote it). With
// asJSON it prints res on stdout as a JSON object whose first field,
// "reference", is name@digest; otherwise it calls details (when not nil)
// to print the human-readable lines on stderr, then prints name@digest
// alone on stdout, the line scripts read. Lines a command prints in both
// modes (warnings, rewritten digests) are the command's, before report.
func (g *globals) report(asJSON bool, name string, digest v1.Hash, res any, details func()) error {
	ref := fmt.Sprintf("%s@%s", name, digest)
	if asJSON {
		return printJSON(g, referenced{Reference: ref, Result: res})
	}
	if details != nil {
		details()
	}
	fmt.Fprintln(g.stdout, ref)
	return nil
}

// referenced is a result as --json prints it: {"reference": Reference}
// followed by the fields of Result, which must encode as a JSON object
// (or null) without a "reference" field of its own. It encodes as the
// struct {Reference string `json:"reference"`; *R} would, for any R.
type referenced struct {
	Reference string
	Result    any
}

// MarshalJSON implements json.Marshaler.
func (r referenced) MarshalJSON() ([]byte, error) {
	ref, err := json.Marshal(r.Reference)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(r.Result)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.WriteString(`{"reference":`)
	out.Write(ref)
	switch {
	case string(body) == "null" || string(body) == "{}":
		out.WriteByte('}')
	case len(body) >= 2 && body[0] == '{':
		out.WriteByte(',')
		out.Write(body[1:])
	default:
		return nil, fmt.Errorf("result of type %T does not encode as a JSON object", r.Result)
	}
	return out.Bytes(), nil
}

// plural is "1 problem", "2 problems", "2 indexes": n and the noun, with
// an s (es after x) unless n is 1.
func plural(n int, noun string) string {
	switch {
	case n == 1:
		return "1 " + noun
	case strings.HasSuffix(noun, "x"):
		return fmt.Sprintf("%d %ses", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
