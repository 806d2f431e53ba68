package server

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// countingBody counts the reads that reach the client's body.
type countingBody struct {
	io.Reader
	reads int
}

func (b *countingBody) Read(p []byte) (int, error) { b.reads++; return b.Reader.Read(p) }
func (b *countingBody) Close() error               { return nil }

// TestManifestBodyReadOnce: the layers in front of distribution share one
// read-ahead of a manifest body, and distribution still reads it whole.
func TestManifestBodyReadOnce(t *testing.T) {
	const manifest = `{"schemaVersion":2}`
	src := &countingBody{Reader: strings.NewReader(manifest)}
	r := httptest.NewRequest("PUT", "/v2/a/manifests/v1", nil)
	r.Body = src
	first, ok := manifestBody(r)
	reads := src.reads
	second, ok2 := manifestBody(r)
	if !ok || !ok2 || string(first) != manifest || string(second) != manifest {
		t.Fatalf("manifestBody: %q %v, then %q %v", first, ok, second, ok2)
	}
	if src.reads != reads {
		t.Errorf("the second look read the client's body again (%d reads, then %d)", reads, src.reads)
	}
	if all, err := io.ReadAll(r.Body); err != nil || string(all) != manifest {
		t.Errorf("distribution reads %q, %v; want the whole body", all, err)
	}
}
