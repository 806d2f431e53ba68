package cli

import (
	"bytes"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/imagemod"
	"github.com/ferry-dev/ferry/transfer"
)

// TestReportJSON checks that report's JSON is, byte for byte, what the
// commands printed before it: the anonymous struct embedding each result
// type after a "reference" field, indented by printJSON.
func TestReportJSON(t *testing.T) {
	d := v1.Hash{Algorithm: "sha256", Hex: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
	desc := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: d, Size: 42, URLs: []string{"https://example.com/a?b=1&c=<2>"}}
	counts := transfer.Result{Source: desc, Written: desc, BlobsCopied: 2, BlobsSkipped: 1, Bytes: 1 << 20, Seconds: 1.5,
		Rewritten: []transfer.Rewritten{{Old: d, New: d}}}
	const name = "reg.example/app:<v1>&x"
	ref := name + "@" + d.String()
	cases := []struct {
		name string
		res  any
		old  any // what the command printed before report
	}{
		{"copy", &counts, struct {
			Reference string `json:"reference"`
			*transfer.Result
		}{ref, &counts}},
		{"append", &imagemod.AppendResult{Written: desc, Base: d, Layers: []v1.Descriptor{desc}, DiffIDs: []v1.Hash{d}, Uploaded: 1, Blobs: counts}, struct {
			Reference string `json:"reference"`
			*imagemod.AppendResult
		}{ref, &imagemod.AppendResult{Written: desc, Base: d, Layers: []v1.Descriptor{desc}, DiffIDs: []v1.Hash{d}, Uploaded: 1, Blobs: counts}}},
		{"append to scratch", &imagemod.AppendResult{Written: desc}, struct {
			Reference string `json:"reference"`
			*imagemod.AppendResult
		}{ref, &imagemod.AppendResult{Written: desc}}},
		{"rebase", &imagemod.RebaseResult{Written: desc, Images: []imagemod.Rebased{{}}, Warnings: []string{"a <b> & c"}, Blobs: counts, DryRun: true}, struct {
			Reference string `json:"reference"`
			*imagemod.RebaseResult
		}{ref, &imagemod.RebaseResult{Written: desc, Images: []imagemod.Rebased{{}}, Warnings: []string{"a <b> & c"}, Blobs: counts, DryRun: true}}},
		{"index", &imagemod.IndexResult{Written: desc, Entries: []v1.Descriptor{desc}, Blobs: counts}, struct {
			Reference string `json:"reference"`
			*imagemod.IndexResult
		}{ref, &imagemod.IndexResult{Written: desc, Entries: []v1.Descriptor{desc}, Blobs: counts}}},
		{"nil result", (*transfer.Result)(nil), struct {
			Reference string `json:"reference"`
			*transfer.Result
		}{ref, nil}},
		{"empty object", struct{}{}, struct {
			Reference string `json:"reference"`
		}{ref}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var want, got, stderr bytes.Buffer
			if err := printJSON(&globals{stdout: &want}, c.old); err != nil {
				t.Fatal(err)
			}
			called := false
			g := &globals{stdout: &got, stderr: &stderr}
			if err := g.report(true, name, d, c.res, func() { called = true }); err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Errorf("got\n%s\nwant\n%s", got.String(), want.String())
			}
			if called || stderr.Len() > 0 {
				t.Errorf("details printed with --json (called %v, stderr %q)", called, stderr.String())
			}
		})
	}
}

// TestReportJSONNotObject checks that a result that is not a JSON object
// is an error, not a malformed document.
func TestReportJSONNotObject(t *testing.T) {
	var out bytes.Buffer
	g := &globals{stdout: &out}
	if err := g.report(true, "x", v1.Hash{}, []int{1}, nil); err == nil {
		t.Errorf("no error; printed %q", out.String())
	}
	if out.Len() > 0 {
		t.Errorf("printed %q", out.String())
	}
}

// TestReportText checks the text mode: details on stderr, then the
// reference alone on stdout.
func TestReportText(t *testing.T) {
	d := v1.Hash{Algorithm: "sha256", Hex: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
	var stdout, stderr bytes.Buffer
	g := &globals{stdout: &stdout, stderr: &stderr}
	if err := g.report(false, "oci:dir:v1", d, struct{}{}, func() { g.stderr.Write([]byte("details\n")) }); err != nil {
		t.Fatal(err)
	}
	if want := "oci:dir:v1@" + d.String() + "\n"; stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
	if stderr.String() != "details\n" {
		t.Errorf("stderr %q, want %q", stderr.String(), "details\n")
	}
	stdout.Reset()
	if err := g.report(false, "x", d, nil, nil); err != nil || stdout.String() != "x@"+d.String()+"\n" {
		t.Errorf("without details: %v, stdout %q", err, stdout.String())
	}
}
