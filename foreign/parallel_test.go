package foreign

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/blob"
)

// rangeServer serves data with Range support and records the Range
// headers; corruptAt >= 0 flips that byte; dropOnce drops the first
// ranged response half-way; ignoreRange answers every request whole.
type rangeServer struct {
	*httptest.Server
	mu          sync.Mutex
	ranges      []string
	dropped     atomic.Bool
	corruptAt   int
	dropOnce    bool
	ignoreRange bool
}

func newRangeServer(t *testing.T, data []byte, rs *rangeServer) *rangeServer {
	served := data
	if rs.corruptAt >= 0 {
		served = bytes.Clone(data)
		served[rs.corruptAt] ^= 0xff
	}
	rs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rg := r.Header.Get("Range"); rg != "" {
			rs.mu.Lock()
			rs.ranges = append(rs.ranges, rg)
			rs.mu.Unlock()
			if rs.ignoreRange {
				r.Header.Del("Range")
			} else if rs.dropOnce && !rs.dropped.Swap(true) {
				start, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
				w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(data)-1, len(data)))
				w.WriteHeader(http.StatusPartialContent)
				w.Write(served[start : start+1000])
				w.(http.Flusher).Flush()
				c, _, _ := w.(http.Hijacker).Hijack()
				c.Close()
				return
			}
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(served))
	}))
	t.Cleanup(rs.Close)
	return rs
}

// spoolDir points os.TempDir at a fresh directory and returns it.
func spoolDir(t *testing.T) string {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	t.Setenv("TMP", dir)
	return dir
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("spool files left: %v", left)
	}
}

func TestParallelParts(t *testing.T) {
	dir := spoolDir(t)
	data := testData(20 << 20)
	rs := newRangeServer(t, data, &rangeServer{corruptAt: -1})
	f := newFetcher(t, WithAllow(allowLoopback), WithConnections(4))
	mustFetch(t, f, descFor(data, rs.URL+"/blob"), data)
	if len(rs.ranges) != 3 {
		t.Fatalf("range requests %q, want one per part after the first", rs.ranges)
	}
	for _, want := range []string{"bytes=5242880-", "bytes=10485760-", "bytes=15728640-"} {
		found := false
		for _, r := range rs.ranges {
			found = found || r == want
		}
		if !found {
			t.Errorf("no request %q among %q", want, rs.ranges)
		}
	}
	assertEmpty(t, dir)
}

func TestParallelSmallBlobOneConnection(t *testing.T) {
	data := testData(1 << 20)
	rs := newRangeServer(t, data, &rangeServer{corruptAt: -1})
	f := newFetcher(t, WithAllow(allowLoopback), WithConnections(8))
	mustFetch(t, f, descFor(data, rs.URL+"/blob"), data)
	if len(rs.ranges) != 0 {
		t.Errorf("a 1 MiB blob was split: %q", rs.ranges)
	}
}

func TestParallelFallsBackWithoutRange(t *testing.T) {
	dir := spoolDir(t)
	data := testData(16 << 20)
	rs := newRangeServer(t, data, &rangeServer{corruptAt: -1, ignoreRange: true})
	f := newFetcher(t, WithAllow(allowLoopback), WithConnections(4))
	mustFetch(t, f, descFor(data, rs.URL+"/blob"), data)
	assertEmpty(t, dir)
}

func TestParallelCorruptPart(t *testing.T) {
	dir := spoolDir(t)
	data := testData(16 << 20)
	rs := newRangeServer(t, data, &rangeServer{corruptAt: 13 << 20})
	f := newFetcher(t, WithAllow(allowLoopback), WithConnections(4))
	_, err := fetch(t, f, descFor(data, rs.URL+"/blob"))
	wantErr(t, err, blob.ErrDigestMismatch, digest(data).String(), "127.0.0.1")
	assertEmpty(t, dir)
}

func TestParallelPartResumes(t *testing.T) {
	dir := spoolDir(t)
	data := testData(16 << 20)
	rs := newRangeServer(t, data, &rangeServer{corruptAt: -1, dropOnce: true})
	var log eventLog
	f := newFetcher(t, WithAllow(allowLoopback), WithConnections(4), WithEvents(log.add))
	mustFetch(t, f, descFor(data, rs.URL+"/blob"), data)
	if log.count(EventResume) == 0 {
		t.Errorf("no resume after a dropped part: %+v", log.evs)
	}
	assertEmpty(t, dir)
}
