package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/server"
)

// TestMirrorSlowClientHoldsNobody: two clients stream one blob's
// download; one reads nothing. The other gets the whole blob at the
// upstream's pace, and the cache is filled; the one that read nothing
// then gets the whole blob too, the bytes it fell behind on from the
// download's spool, which is removed after. The old code wrote to each
// client from the download: the client that read nothing held the
// download, the other client and the cache fill.
func TestMirrorSlowClientHoldsNobody(t *testing.T) {
	spools := t.TempDir()
	t.Setenv("TMPDIR", spools)
	// 48 MiB: more than the slow client's socket buffers and the
	// mirror's queue for it (8 MiB) hold.
	blob := make([]byte, 48<<20)
	for i := range blob {
		blob[i] = byte(i * 31 >> 7)
	}
	layer := static.NewLayer(blob, types.DockerLayer)
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	reg := fixture.NewRegistry(t, server.WithRoot(t.TempDir())) // in memory, a large push is slow
	reg.Push(t, "app", "v1", img)
	d, _ := layer.Digest()
	regURL, _ := url.Parse(reg.URL)
	rp := httputil.NewSingleHostReverseProxy(regURL)
	release := make(chan struct{})
	var gets atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && path.Base(r.URL.Path) == d.String() {
			gets.Add(1)
			<-release // both clients join the download before it opens
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	root := filepath.Join(t.TempDir(), "data")
	m := startMirror(t, root, server.WithProxy(server.Upstream{URL: up.URL}))
	blobURL := m.URL + "/v2/app/blobs/" + d.String()

	// The reading client asks first, so that whatever the machine's load,
	// the one that reads nothing never has the download to itself: it
	// joins it, or comes late and streams from the upstream on its own.
	fast := pullAsync(&http.Client{Transport: &http.Transport{}}, blobURL, d)
	for gets.Load() < 1 {
		time.Sleep(10 * time.Millisecond)
	}
	slowResp := make(chan *http.Response, 1)
	go func() {
		resp, err := (&http.Client{Transport: &http.Transport{}}).Get(blobURL)
		if err != nil {
			t.Error(err)
			close(slowResp)
			return
		}
		slowResp <- resp // its body is not read until the other is done
	}()
	time.Sleep(time.Second) // the second GET joins the download
	close(release)
	select {
	case err := <-fast:
		if err != nil {
			t.Fatalf("the client reading: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the client reading did not get the blob while the other read nothing")
	}
	if n := gets.Load(); n != 1 {
		t.Logf("the upstream was asked for the blob %d times: the second GET came late", n)
	}
	// The cache is filled while the other client still reads nothing.
	waitLinked(t, root, "app", d)
	resp, ok := <-slowResp
	if !ok {
		return
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || sha(b) != d.String() {
		t.Errorf("the client that read nothing, reading at last: %v, %d bytes hashing to %s, want %s", err, len(b), sha(b), d)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		left, _ := os.ReadDir(spools)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("spool files left: %v", left)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMirrorLateClientReadsTheDownload: a client that asks for an
// ordinary blob after its download has begun gets the bytes the download
// has yet to fetch from it (a spool started for it), and only those
// already fetched from the upstream again, by a ranged GET; the old code
// read the whole blob from the upstream a second time, once per late
// client (a fleet of nodes pulling one new image at once).
func TestMirrorLateClientReadsTheDownload(t *testing.T) {
	g := newGatedUpstream(t, "app")
	blob, d, first, release := g.blob, g.d, gatedFirst, g.release
	m := startMirror(t, "", server.WithProxy(server.Upstream{URL: g.URL}))
	blobURL := m.URL + "/v2/app/blobs/" + d.String()
	// The first client has the download's first MiB: a GET now is late.
	resp, err := stallFreeClient().Get(blobURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	early := make([]byte, first)
	if _, err := io.ReadFull(resp.Body, early); err != nil {
		t.Fatal(err)
	}
	late := pullAsync(stallFreeClient(), blobURL, d)
	time.Sleep(200 * time.Millisecond) // it asks for a spool
	release()
	rest, err := io.ReadAll(resp.Body)
	if err != nil || sha(append(early, rest...)) != d.String() {
		t.Errorf("the first client: %v, %d bytes", err, len(early)+len(rest))
	}
	if err := <-late; err != nil {
		t.Errorf("the late client: %v", err)
	}
	if n := g.whole.Load(); n != 1 {
		t.Errorf("the upstream sent the whole blob %d times, want once", n)
	}
	// One ranged GET, for what the download had fetched; none when the
	// machine was so loaded that the late GET came after the download
	// ended (it is then served from the storage).
	if n := g.ranged.Load(); n > 1 {
		t.Errorf("%d ranged GETs upstream, want 1", n)
	} else if rg, _ := g.asked.Load().(string); rg == fmt.Sprintf("bytes=0-%d", len(blob)-1) {
		t.Errorf("the late client asked the upstream for the whole blob: %s", rg)
	}
}

// TestMirrorBlobDownloadingForAnotherRepository: a blob asked for through
// one repository while another repository's download of it is under way
// is read as that download fetches it (once the upstream has said this
// repository has it), not fetched whole a second time: the old code did.
func TestMirrorBlobDownloadingForAnotherRepository(t *testing.T) {
	g := newGatedUpstream(t, "a/app", "b/app")
	d, first, release := g.d, gatedFirst, g.release
	m := startMirror(t, "", server.WithProxy(server.Upstream{URL: g.URL}))
	resp, err := stallFreeClient().Get(m.URL + "/v2/a/app/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	early := make([]byte, first)
	if _, err := io.ReadFull(resp.Body, early); err != nil {
		t.Fatal(err)
	}
	other := pullAsync(stallFreeClient(), m.URL+"/v2/b/app/blobs/"+d.String(), d)
	time.Sleep(300 * time.Millisecond) // b/app's download asks for a spool
	release()
	rest, err := io.ReadAll(resp.Body)
	if err != nil || sha(append(early, rest...)) != d.String() {
		t.Errorf("through a/app: %v, %d bytes", err, len(early)+len(rest))
	}
	if err := <-other; err != nil {
		t.Errorf("through b/app: %v", err)
	}
	if n := g.whole.Load(); n != 1 {
		t.Errorf("the upstream sent the whole blob %d times, want once", n)
	}
}

// gatedUpstream is a registry holding one 4 MiB layer in each of repos
// (as REPO:v1) behind an upstream that sends a GET of the whole blob its
// first MiB (first) at once and the rest once release is called (or the
// test ends), and serves ranged GETs at once. It counts both.
type gatedUpstream struct {
	URL     string
	blob    []byte
	d       v1.Hash
	release func()
	whole   atomic.Int32
	ranged  atomic.Int32
	asked   atomic.Value // the last Range header
}

const gatedFirst = 1 << 20

func newGatedUpstream(t *testing.T, repos ...string) *gatedUpstream {
	t.Helper()
	g := &gatedUpstream{blob: make([]byte, 4<<20)}
	for i := range g.blob {
		g.blob[i] = byte(i * 7 >> 5)
	}
	layer := static.NewLayer(g.blob, types.DockerLayer)
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	reg := fixture.NewRegistry(t, server.WithRoot(t.TempDir()))
	for _, repo := range repos {
		reg.Push(t, repo, "v1", img)
	}
	g.d, _ = layer.Digest()
	regURL, _ := url.Parse(reg.URL)
	rp := httputil.NewSingleHostReverseProxy(regURL)
	released := make(chan struct{})
	g.release = sync.OnceFunc(func() { close(released) })
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || path.Base(r.URL.Path) != g.d.String() {
			rp.ServeHTTP(w, r)
			return
		}
		if rg := r.Header.Get("Range"); rg != "" {
			g.ranged.Add(1)
			g.asked.Store(rg)
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(g.blob))
			return
		}
		g.whole.Add(1)
		w.Header().Set("Content-Length", fmt.Sprint(len(g.blob)))
		_, _ = w.Write(g.blob[:gatedFirst])
		w.(http.Flusher).Flush()
		select {
		case <-released:
			_, _ = w.Write(g.blob[gatedFirst:])
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(up.Close)
	t.Cleanup(g.release) // before up.Close, which waits for its handlers
	g.URL = up.URL
	return g
}

// pullAsync GETs blob d at url with c in the background; the channel
// gets nil once the whole blob came with its digest, else what was
// wrong.
func pullAsync(c *http.Client, url string, d v1.Hash) <-chan error {
	done := make(chan error, 1)
	go func() {
		resp, err := c.Get(url)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err = rerr; err == nil && sha(b) != d.String() {
				err = fmt.Errorf("%s, %d bytes hashing to %s", resp.Status, len(b), sha(b))
			}
		}
		done <- err
	}()
	return done
}
