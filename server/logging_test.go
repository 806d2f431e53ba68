package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/ferry-dev/ferry/server"
)

// lockedBuffer is a bytes.Buffer safe for the log's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// probeMissing does what a client does before a push and a pull: HEAD a
// blob and a manifest that are not there, GET a missing tag.
func probeMissing(r *reg) {
	for _, p := range []string{
		"/v2/app/blobs/sha256:" + strings.Repeat("1", 64),
		"/v2/app/manifests/missing",
	} {
		resp, body := r.do(http.MethodHead, p, nil)
		r.want(resp, body, http.StatusNotFound)
	}
	resp, body := r.do(http.MethodGet, "/v2/app/manifests/missing", nil)
	r.want(resp, body, http.StatusNotFound)
}

// TestNotFoundLoggedAtDebug: the 404s of existence checks are not logged
// at the error level, and are at debug (issue 18 item 7); a real error
// still is.
func TestNotFoundLoggedAtDebug(t *testing.T) {
	var quiet lockedBuffer
	r := newReg(t, server.WithRoot(t.TempDir()), server.WithLog(&quiet, "error"))
	probeMissing(r)
	if strings.Contains(quiet.String(), "response completed with error") {
		t.Errorf("404s of existence checks logged at error level:\n%s", quiet.String())
	}
	resp, body := r.do(http.MethodPut, "/v2/app/manifests/v1", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:`+strings.Repeat("2", 64)+`","size":2},"layers":[]}`), "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	r.want(resp, body, http.StatusBadRequest)
	if !strings.Contains(quiet.String(), "level=error") {
		t.Errorf("a refused manifest is no longer logged at error level:\n%s", quiet.String())
	}

	var verbose lockedBuffer
	r = newReg(t, server.WithRoot(t.TempDir()), server.WithLog(&verbose, "debug"), server.WithLogFormat(server.LogJSON))
	probeMissing(r)
	found := 0
	for _, line := range strings.Split(strings.TrimSpace(verbose.String()), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("--log-format json wrote a line that is not JSON: %q", line)
		}
		if e["msg"] == "response completed with error" {
			found++
			if e["level"] != "debug" {
				t.Errorf("404 logged at %v: %s", e["level"], line)
			}
		}
	}
	if found == 0 {
		t.Errorf("no 404 logged at debug level:\n%s", verbose.String())
	}
}

func TestWithLogFormatRefusesUnknown(t *testing.T) {
	if _, err := server.NewHandler(t.Context(), server.WithLogFormat("xml")); err == nil || !strings.Contains(err.Error(), "xml") {
		t.Errorf("WithLogFormat(xml): %v", err)
	}
}

// TestOtherDigestLookupsNotLogged: serving content by its sha512 digest,
// which is how ferry stores such content, logs no warning for it at any
// level (distribution's "looking up blob with canonical target" on every
// such read), while the rest of the log is kept.
func TestOtherDigestLookupsNotLogged(t *testing.T) {
	for _, level := range []string{"error", "warn", "info"} {
		t.Run(level, func(t *testing.T) {
			var log lockedBuffer
			r := newReg(t, server.WithRoot(t.TempDir()), server.WithLog(&log, level))
			const repo = "alg/logged"
			img := r.sha512Image(repo, "quiet")
			_, d, raw := r.putBySHA512(repo, img, "")
			r.wantManifestBy(repo, d.String(), d, raw, img.MediaType)
			r.wantBlobBy(repo, img.Layers[0].Digest, []byte("layer one of quiet"))
			if strings.Contains(log.String(), "canonical target") {
				t.Errorf("reads by sha512 logged at level %s:\n%s", level, log.String())
			}
			if level == "info" && !strings.Contains(log.String(), "response completed") {
				t.Errorf("the rest of the log is gone at level info:\n%s", log.String())
			}
		})
	}
}
