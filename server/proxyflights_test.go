package server

import (
	"errors"
	"testing"
)

// TestFlightsFailedDownloadIsNotJoined: a request that comes after a
// download has failed, while it is still cleaning up (its storage
// writer draining), starts a download of its own instead of sharing the
// failure; the failed one's end leaves the new one in place.
func TestFlightsFailedDownloadIsNotJoined(t *testing.T) {
	var fs flights
	old, leader := fs.join("repo@sha256:x")
	if !leader {
		t.Fatal("the first request does not start the download")
	}
	old.update(func() { old.released, old.err = true, errUnreachable }) // as copyBlob's failure
	f, leader := fs.join("repo@sha256:x")
	if !leader || f == old {
		t.Fatal("a request after the download failed joined it")
	}
	fs.end("repo@sha256:x", old, errors.New("failed"))
	if again, leader := fs.join("repo@sha256:x"); leader || again != f {
		t.Error("the failed download's end dropped the new one")
	}
}
