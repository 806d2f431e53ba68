package server

import (
	"errors"
	"os"
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

// TestFlightsFailedSpoolIsNotRead: a late client of a foreign blob whose
// download has failed (its spool not yet removed) is not given the spool,
// whose reader would fail at once after a 200: it waits for the
// download's end and is answered 404.
func TestFlightsFailedSpoolIsNotRead(t *testing.T) {
	spool, err := os.CreateTemp(t.TempDir(), "spool")
	if err != nil {
		t.Fatal(err)
	}
	f := newFlight()
	f.update(func() { f.foreign, f.spool, f.refs, f.opened, f.size = true, spool, 1, true, 10 })
	if !f.acquireFrom(0) {
		t.Fatal("the spool of a download under way is not given")
	}
	f.release()
	f.update(func() { f.released, f.err = true, errForeignFetch })
	if f.acquireFrom(0) {
		f.release()
		t.Error("the spool of a failed download is given to a late client")
	}
	f.release()
}
