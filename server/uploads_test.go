package server_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/server"
)

// TestAbandonedUploadsPurged: an upload left unfinished is removed from
// the disk once older than the purge age, while the server runs (issue 18
// item 1), and a younger one is not.
// A configuration file's storage.maintenance.uploadpurging runs ferry's
// purger as it says.
func TestAbandonedUploadsPurged(t *testing.T) {
	t.Run("options", func(t *testing.T) {
		root := t.TempDir()
		testAbandonedUploadsPurged(t, root, server.WithRoot(root), server.WithUploadPurging(time.Second, 100*time.Millisecond))
	})
	t.Run("config file", func(t *testing.T) {
		root := t.TempDir()
		cfg := filepath.Join(t.TempDir(), "config.yml")
		yml := "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: " + root +
			"\n  maintenance:\n    uploadpurging:\n      enabled: true\n      age: 1s\n      interval: 100ms\n      dryrun: false\n"
		if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		testAbandonedUploadsPurged(t, root, server.WithConfigFile(cfg))
	})
}

func testAbandonedUploadsPurged(t *testing.T, root string, opts ...server.Option) {
	s, err := server.Start(context.Background(), "127.0.0.1:0", opts...)
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

// TestCloseWaitsForPurge: Close ends the upload purger and waits for a
// purge under way before it releases the storage root, so that a process
// that takes the root next (`ferry storage gc`) never runs beside a purge
// still deleting in it.
func TestCloseWaitsForPurge(t *testing.T) {
	root := t.TempDir()
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	server.SetPurgeStarts(t, func() {
		once.Do(func() { close(entered); <-release })
	})
	s, err := server.Start(context.Background(), "127.0.0.1:0", server.WithRoot(root), server.WithUploadPurging(time.Hour, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no purge began within 10 s of the start")
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		close(release)
		t.Fatalf("Close returned (%v) while a purge was under way", err)
	case <-time.After(300 * time.Millisecond):
	}
	if s2, err := server.Start(context.Background(), "127.0.0.1:0", server.WithRoot(root)); err == nil {
		s2.Close()
		close(release)
		t.Fatal("a second server took the root while the first one's purge was under way")
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	s2, err := server.Start(context.Background(), "127.0.0.1:0", server.WithRoot(root))
	if err != nil {
		t.Fatalf("the root is not released after Close: %v", err)
	}
	s2.Close()
}

// TestUploadPurgingConfigRefused: a configuration file's uploadpurging
// that ferry's purger cannot run by is refused at the start, naming the
// key, as distribution refused it before ferry's purger took over.
func TestUploadPurgingConfigRefused(t *testing.T) {
	for _, bad := range []string{"age: soon", "interval: 0s", "dryrun: maybe"} {
		cfg := filepath.Join(t.TempDir(), "config.yml")
		yml := "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: " + t.TempDir() +
			"\n  maintenance:\n    uploadpurging:\n      enabled: true\n      " + bad + "\n"
		if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		if s, err := server.Start(context.Background(), "127.0.0.1:0", server.WithConfigFile(cfg)); err == nil {
			s.Close()
			t.Errorf("%s: started", bad)
		} else if !strings.Contains(err.Error(), "uploadpurging") {
			t.Errorf("%s: %v; want an error naming uploadpurging", bad, err)
		}
	}
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
