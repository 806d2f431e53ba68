package server_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/server"
)

// TestAbandonedUploadsPurged: an upload left unfinished is removed from
// the disk once older than the purge age, while the server runs (issue 18
// item 1), and a younger one is not.
func TestAbandonedUploadsPurged(t *testing.T) {
	root := t.TempDir()
	s, err := server.Start(context.Background(), "127.0.0.1:0", server.WithRoot(root), server.WithUploadPurging(time.Second, 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := &reg{t: t, url: s.URL}
	resp, body := r.do(http.MethodPost, "/v2/left/blobs/uploads/", nil)
	r.want(resp, body, http.StatusAccepted)
	loc := r.location(resp)
	resp, body = r.do(http.MethodPatch, loc, []byte("half a layer"), "Content-Type", "application/octet-stream")
	r.want(resp, body, http.StatusAccepted)
	uploads := filepath.Join(root, "docker", "registry", "v2", "repositories", "left", "_uploads")
	if entries, err := os.ReadDir(uploads); err != nil || len(entries) != 1 {
		t.Fatalf("the fresh upload is not on disk (or already purged): %v %v", entries, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries, _ := os.ReadDir(uploads)
		if len(entries) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("abandoned upload still on disk after 10 s with a purge age of 1 s: %v", entries)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, body = r.do(http.MethodGet, loc, nil)
	r.wantError(resp, body, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
}

// TestCancelledUploadFreesItsBytes: the DELETE a client sends for an
// upload it abandons (store/registry's cancelUpload) is honoured without
// --delete and frees the upload's bytes at once. (distribution then
// writes the hash state of the closed writer back: a directory of a few
// bytes stays, which the purger and gc remove with the rest.)
func TestCancelledUploadFreesItsBytes(t *testing.T) {
	root := t.TempDir()
	r := newReg(t, server.WithRoot(root))
	resp, body := r.do(http.MethodPost, "/v2/gone/blobs/uploads/", nil)
	r.want(resp, body, http.StatusAccepted)
	loc := r.location(resp)
	resp, body = r.do(http.MethodPatch, loc, []byte("bytes the client gives up on"), "Content-Type", "application/octet-stream")
	r.want(resp, body, http.StatusAccepted)
	resp, body = r.do(http.MethodDelete, r.location(resp), nil)
	r.want(resp, body, http.StatusNoContent)
	data, _ := filepath.Glob(filepath.Join(root, "docker", "registry", "v2", "repositories", "gone", "_uploads", "*", "data"))
	if len(data) != 0 {
		t.Errorf("a cancelled upload's data is still on disk: %v", data)
	}
}
