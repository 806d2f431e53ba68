package scaleout

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/transfer"
)

// The tests run ferry as a user would: a binary built once by TestMain,
// replicas started as processes, clients as processes.
var (
	s3env     S3
	skipWhy   string
	ferryPath string
)

const allowLoopback = `^http://127\.0\.0\.1:`

func TestMain(m *testing.M) {
	var err error
	s3env, err = FromEnv()
	if err != nil {
		if os.Getenv("FERRY_S3_REQUIRED") != "" {
			fmt.Fprintf(os.Stderr, "FERRY_S3_REQUIRED is set: %v\n", err)
			os.Exit(1)
		}
		skipWhy = err.Error()
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "ferry-scaleout-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ferryPath, err = BuildFerry(context.Background(), "../../..", dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needS3 skips the test unless an S3 server is configured.
func needS3(t *testing.T) {
	t.Helper()
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
}

// newCluster starts n replicas behind nginx; on failure the test's log
// gets the replicas' and nginx's logs.
func newCluster(t *testing.T, n int, mod ...func(*Options)) *Cluster {
	t.Helper()
	needS3(t)
	o := Options{Ferry: ferryPath, Replicas: n, S3: s3env, Dir: t.TempDir()}
	for _, f := range mod {
		f(&o)
	}
	c, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(o.Dir, "*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				if len(b) > 8000 {
					b = b[len(b)-8000:]
				}
				t.Logf("--- %s:\n%s", filepath.Base(l), b)
			}
		}
	})
	return c
}

// ferry runs the ferry binary with the cluster's environment and returns
// stdout, stderr and the exit code.
func ferry(t *testing.T, c *Cluster, args ...string) (string, string, int) {
	t.Helper()
	return ferryCtx(context.Background(), c, args...)
}

func ferryCtx(ctx context.Context, c *Cluster, args ...string) (string, string, int) {
	cmd := exec.CommandContext(ctx, ferryPath, append([]string{"--progress", "none"}, args...)...)
	cmd.Env = c.Env()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		errb.WriteString(err.Error())
	}
	return out.String(), errb.String(), code
}

func copyJSON(t *testing.T, c *Cluster, args ...string) transfer.Result {
	t.Helper()
	out, stderr, code := ferry(t, c, append([]string{"copy", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("ferry copy %v: exit %d: %s", args, code, stderr)
	}
	var r transfer.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("ferry copy --json printed %q: %v", out, err)
	}
	return r
}

// blobOK fetches a blob from host directly and checks its digest.
func blobOK(t *testing.T, host, repo string, d v1.Hash) bool {
	t.Helper()
	resp, err := http.Get("http://" + host + "/v2/" + repo + "/blobs/" + d.String())
	if err != nil {
		t.Errorf("GET blob %s from %s: %v", d, host, err)
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		t.Errorf("read blob %s from %s: %v", d, host, err)
		return false
	}
	return "sha256:"+hex.EncodeToString(h.Sum(nil)) == d.String()
}

// manifest fetches a manifest from host and checks its digest when ident
// is one.
func manifest(t *testing.T, host, repo, ident string) ([]byte, string, v1.Hash) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+host+"/v2/"+repo+"/manifests/"+ident, nil)
	req.Header.Set("Accept", strings.Join([]string{
		"application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
		"application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.docker.distribution.manifest.v2+json",
	}, ", "))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET manifest %s:%s from %s: %v", repo, ident, host, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET manifest %s:%s from %s: %s: %s", repo, ident, host, resp.Status, b)
	}
	d, _, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(ident, "sha256:") && d.String() != ident {
		t.Fatalf("manifest %s from %s hashes to %s", ident, host, d)
	}
	return b, resp.Header.Get("Content-Type"), d
}

// verifyTree checks, on every replica directly, that repo:tag's manifest
// (and an index's manifests) and every blob they list — foreign layers
// aside unless wantForeign — are there with the right digests. It returns
// the number of blobs checked per replica.
func verifyTree(t *testing.T, c *Cluster, repo, tag string, wantForeign bool) int {
	t.Helper()
	n := 0
	for i, host := range c.Replicas {
		n = 0
		var walk func(ident string)
		walk = func(ident string) {
			raw, _, _ := manifest(t, host, repo, ident)
			var m struct {
				Manifests []v1.Descriptor `json:"manifests"`
				Config    *v1.Descriptor  `json:"config"`
				Layers    []v1.Descriptor `json:"layers"`
			}
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatalf("replica %d: manifest %s: %v", i, ident, err)
			}
			for _, d := range m.Manifests {
				walk(d.Digest.String())
			}
			blobs := m.Layers
			if m.Config != nil {
				blobs = append(blobs, *m.Config)
			}
			for _, d := range blobs {
				if len(d.URLs) > 0 && !wantForeign {
					continue
				}
				n++
				if !blobOK(t, host, repo, d.Digest) {
					t.Errorf("replica %d (%s): blob %s of %s:%s missing or wrong", i, host, d.Digest, repo, tag)
				}
			}
		}
		walk(tag)
	}
	return n
}

// pullEach copies repo:tag from every replica directly into an OCI layout,
// which verifies every blob's digest as it streams.
func pullEach(t *testing.T, c *Cluster, repo, tag string) {
	t.Helper()
	for i, host := range c.Replicas {
		dir := filepath.Join(t.TempDir(), "pull")
		if _, stderr, code := ferry(t, c, "copy", "--foreign-allow", allowLoopback, host+"/"+repo+":"+tag, "oci:"+dir+":"+tag); code != 0 {
			t.Errorf("pull %s:%s from replica %d: exit %d: %s", repo, tag, i, code, stderr)
		}
	}
}

// TestCopyThroughBalancer: the core copy tests (keep, include, localize,
// a two-platform index) through nginx in front of three replicas; then a
// pull from each replica directly verifies every blob.
func TestCopyThroughBalancer(t *testing.T) {
	c := newCluster(t, 3)
	e := fixture.MicrosoftLike(t)
	src := e.Reg.Ref(fixture.Repo, fixture.IndexTag)
	bal := c.Balancer

	t.Run("keep", func(t *testing.T) {
		r := copyJSON(t, c, src, bal+"/keep/servercore:ltsc")
		if r.Written.Digest != e.Index {
			t.Errorf("digest %s, want the source's %s", r.Written.Digest, e.Index)
		}
		if r.ForeignKept != 4 {
			t.Errorf("foreign kept %d, want 4", r.ForeignKept)
		}
		if n := verifyTree(t, c, "keep/servercore", "ltsc", false); n != 4 {
			t.Errorf("%d blobs checked per replica, want 4 (two configs, two ordinary layers)", n)
		}
		for _, host := range c.Replicas {
			for _, f := range e.Foreign {
				if blobOK(t, host, "keep/servercore", f) {
					t.Errorf("foreign blob %s stored with keep", f)
				}
			}
		}
		if r := copyJSON(t, c, src, bal+"/keep/servercore:ltsc"); r.BlobsCopied != 0 || r.BlobsSkipped != 4 {
			t.Errorf("rerun copied %d, skipped %d; want 0 and 4", r.BlobsCopied, r.BlobsSkipped)
		}
		pullEach(t, c, "keep/servercore", "ltsc")
	})
	t.Run("include", func(t *testing.T) {
		r := copyJSON(t, c, "--foreign", "include", "--foreign-allow", allowLoopback, src, bal+"/include/servercore:ltsc")
		if r.Written.Digest != e.Index {
			t.Errorf("digest %s, want the source's %s", r.Written.Digest, e.Index)
		}
		if n := verifyTree(t, c, "include/servercore", "ltsc", true); n != 8 {
			t.Errorf("%d blobs checked per replica, want 8", n)
		}
		pullEach(t, c, "include/servercore", "ltsc")
	})
	t.Run("localize", func(t *testing.T) {
		r := copyJSON(t, c, "--foreign", "localize", "--foreign-allow", allowLoopback, src, bal+"/localize/servercore:ltsc")
		if r.Written.Digest == e.Index {
			t.Errorf("localize kept the index digest")
		}
		raw, _, _ := manifest(t, bal, "localize/servercore", r.Written.Digest.String())
		if bytes.Contains(raw, []byte("foreign")) {
			t.Errorf("localized index still names foreign layers")
		}
		if n := verifyTree(t, c, "localize/servercore", "ltsc", true); n != 8 {
			t.Errorf("%d blobs checked per replica, want 8", n)
		}
		pullEach(t, c, "localize/servercore", "ltsc")
	})
	t.Run("index", func(t *testing.T) {
		// The single-platform tag beside the index: both manifests
		// resolve on every replica, and the index lists both platforms.
		copyJSON(t, c, e.Reg.Ref(fixture.Repo, fixture.SingleTag), bal+"/keep/servercore:ltsc2019")
		for _, host := range c.Replicas {
			raw, _, d := manifest(t, host, "keep/servercore", "ltsc")
			if d != e.Index || !bytes.Contains(raw, []byte(fixture.OSVersion1)) || !bytes.Contains(raw, []byte(fixture.OSVersion2)) {
				t.Errorf("%s: index %s lacks a platform: %s", host, d, raw)
			}
			if _, _, d := manifest(t, host, "keep/servercore", "ltsc2019"); d != e.SingleID {
				t.Errorf("%s: ltsc2019 is %s, want %s", host, d, e.SingleID)
			}
		}
	})
}

// upload pushes blob b to repo with the requests of one upload spread over
// hosts in turn: POST on hosts[0], each PATCH chunk on the next host, the
// closing PUT on the next. chunks == nil makes it monolithic (POST, then
// PUT with the whole body). It returns the replicas the requests went to.
func upload(t *testing.T, hosts []string, repo string, b []byte, chunks []int) {
	t.Helper()
	turn := 0
	next := func() string { h := hosts[turn%len(hosts)]; turn++; return h }
	resp, err := http.Post("http://"+next()+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST upload: %s", resp.Status)
	}
	loc := resp.Header.Get("Location")
	// Send the next request of the upload to another replica: same path
	// and state, another host.
	redirect := func(loc string) string {
		i := strings.Index(loc, "/v2/")
		if i < 0 {
			t.Fatalf("Location %q", loc)
		}
		return "http://" + next() + loc[i:]
	}
	off := 0
	for _, n := range chunks {
		req, _ := http.NewRequest(http.MethodPatch, redirect(loc), bytes.NewReader(b[off:off+n]))
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", off, off+n-1))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("PATCH bytes %d-%d: %s: %s", off, off+n-1, resp.Status, body)
		}
		loc = resp.Header.Get("Location")
		off += n
	}
	d, _, _ := v1.SHA256(bytes.NewReader(b))
	u := redirect(loc)
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	req, _ := http.NewRequest(http.MethodPut, u+sep+"digest="+d.String(), bytes.NewReader(b[off:]))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT upload: %s: %s", resp.Status, body)
	}
}

func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	h := sha256.Sum256([]byte{seed})
	for i := range b {
		if i%32 == 0 && i > 0 {
			h = sha256.Sum256(h[:])
		}
		b[i] = h[i%32]
	}
	return b
}

// TestUploadAcrossReplicas: a monolithic and a chunked upload whose
// requests go to a different replica each time complete, and every
// replica serves the blob; so does an upload through the balancer, whose
// requests nginx spreads over the replicas.
func TestUploadAcrossReplicas(t *testing.T) {
	c := newCluster(t, 3)
	check := func(repo string, b []byte) {
		t.Helper()
		d, _, _ := v1.SHA256(bytes.NewReader(b))
		for _, host := range c.Replicas {
			if !blobOK(t, host, repo, d) {
				t.Errorf("%s: blob %s missing or wrong", host, d)
			}
		}
	}
	mono := randomBytes(3<<20+17, 1)
	upload(t, c.Replicas, "uploads/mono", mono, nil)
	check("uploads/mono", mono)
	// Chunks above and below the S3 driver's 5 MiB part size, so that a
	// replica continues a multipart upload another began, with a short
	// part pending.
	chunked := randomBytes(14<<20+5, 2)
	upload(t, c.Replicas, "uploads/chunked", chunked, []int{6 << 20, 1 << 20, 5 << 20})
	check("uploads/chunked", chunked)

	before := accessLines(t, c)
	viaLB := randomBytes(9<<20+3, 3)
	upload(t, []string{c.Balancer}, "uploads/balanced", viaLB, []int{2 << 20, 4 << 20, 2 << 20})
	check("uploads/balanced", viaLB)
	ups := map[string]bool{}
	for _, l := range accessLines(t, c)[len(before):] {
		if f := strings.Fields(l); len(f) >= 4 && strings.Contains(f[1], "/blobs/uploads/") {
			ups[f[3]] = true
		}
	}
	if len(ups) < 2 {
		t.Errorf("the balanced upload's requests reached %d replica(s), want them spread: %v", len(ups), ups)
	}
}

// accessLines returns nginx's access log lines so far.
func accessLines(t *testing.T, c *Cluster) []string {
	t.Helper()
	b, err := os.ReadFile(c.AccessLog)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// put sends a request with a body and checks the status.
func put(t *testing.T, method, url, contentType string, body []byte, want int) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s: %s", method, url, resp.Status, b)
	}
	return resp
}

// TestReferrersOnEveryReplica: an artifact pushed through one replica,
// whose subject is an image, is listed by the referrers API of every
// replica: the list is derived from the shared storage.
func TestReferrersOnEveryReplica(t *testing.T) {
	c := newCluster(t, 3)
	repo := "refs/app"
	r0 := "http://" + c.Replicas[0]
	empty := []byte("{}")
	layer := randomBytes(1024, 9)
	for _, b := range [][]byte{empty, layer} {
		upload(t, c.Replicas[:1], repo, b, nil)
	}
	desc := func(mt string, b []byte) v1.Descriptor {
		d, n, _ := v1.SHA256(bytes.NewReader(b))
		return v1.Descriptor{MediaType: types.MediaType("application/vnd.oci." + mt), Digest: d, Size: n}
	}
	image, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": desc("empty.v1+json", empty), "layers": []v1.Descriptor{desc("image.layer.v1.tar", layer)},
	})
	subject := desc("image.manifest.v1+json", image)
	put(t, http.MethodPut, r0+"/v2/"+repo+"/manifests/v1", "application/vnd.oci.image.manifest.v1+json", image, http.StatusCreated)
	artifact, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"artifactType": "application/vnd.example.sbom+json",
		"config":       desc("empty.v1+json", empty), "layers": []v1.Descriptor{desc("empty.v1+json", empty)},
		"subject": subject,
	})
	ad := desc("image.manifest.v1+json", artifact)
	resp := put(t, http.MethodPut, r0+"/v2/"+repo+"/manifests/"+ad.Digest.String(), "application/vnd.oci.image.manifest.v1+json", artifact, http.StatusCreated)
	if got := resp.Header.Get("OCI-Subject"); got != subject.Digest.String() {
		t.Errorf("OCI-Subject %q, want %s", got, subject.Digest)
	}
	for i, host := range append(append([]string{}, c.Replicas...), c.Balancer) {
		resp, err := http.Get("http://" + host + "/v2/" + repo + "/referrers/" + subject.Digest.String())
		if err != nil {
			t.Fatal(err)
		}
		var idx struct {
			Manifests []v1.Descriptor `json:"manifests"`
		}
		err = json.NewDecoder(resp.Body).Decode(&idx)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: referrers: %s, %v", host, resp.Status, err)
		}
		if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != ad.Digest || idx.Manifests[0].ArtifactType != "application/vnd.example.sbom+json" {
			t.Errorf("replica %d (%s): referrers %+v, want the artifact %s", i, host, idx.Manifests, ad.Digest)
		}
	}
}

// TestConcurrentPushes: eight clients push overlapping images (shared
// layers, some into the same repository) through the balancer at once;
// afterwards every manifest is pulled and verified on every replica, and
// nginx logged no 5xx.
func TestConcurrentPushes(t *testing.T) {
	c := newCluster(t, 3)
	src := fixture.NewRegistry(t)
	urls := fixture.NewURLServer(t)
	const clients = 8
	refs := make([]string, clients)
	for i := range clients {
		img := urls.WindowsImage(t, fixture.ImageSpec{OSVersion: fmt.Sprintf("10.0.%d", i), Layers: 1 + i%4, LayerSize: 1 << 20, Seed: 42})
		src.Push(t, "conc/src", fmt.Sprint(i), img)
		refs[i] = fmt.Sprintf("conc/app%d:v%d", i%3, i)
	}
	var wg sync.WaitGroup
	errs := make([]string, clients)
	t0 := time.Now()
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, stderr, code := ferryCtx(context.Background(), c, "copy", src.Ref("conc/src", fmt.Sprint(i)), c.Balancer+"/"+refs[i]); code != 0 {
				errs[i] = fmt.Sprintf("client %d: exit %d: %s", i, code, stderr)
			}
		}()
	}
	wg.Wait()
	t.Logf("8 concurrent pushes through the balancer: %s", time.Since(t0).Round(time.Millisecond))
	for _, e := range errs {
		if e != "" {
			t.Error(e)
		}
	}
	for _, ref := range refs {
		repo, tag, _ := strings.Cut(ref, ":")
		verifyTree(t, c, repo, tag, false)
	}
	for _, l := range accessLines(t, c) {
		if f := strings.Fields(l); len(f) >= 3 && strings.HasPrefix(f[2], "5") {
			t.Errorf("nginx answered 5xx: %s", l)
		}
	}
}

// TestReplicaKilledMidCopy: a replica is killed (SIGKILL) while a copy
// streams through the balancer. First the client carries on (ferry retries
// the upload nginx answered 502 for); then another replica dies together
// with the client. Either way the rerun through the balancer completes and
// transfers only what the first run did not store.
func TestReplicaKilledMidCopy(t *testing.T) {
	c := newCluster(t, 3)
	src := fixture.NewRegistry(t)
	urls := fixture.NewURLServer(t)
	for i, victim := range []int{1, 2} {
		img := urls.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.1", Layers: 8, LayerSize: 4 << 20, Seed: int64(77 + i)})
		src.Push(t, "big/src", fmt.Sprint(i), img)
		killMidCopy(t, c, src.Ref("big/src", fmt.Sprint(i)), fmt.Sprintf("big/app%d", i), victim, i == 1)
	}
	live := &Cluster{Replicas: []string{c.Replicas[0]}, opts: c.opts}
	verifyTree(t, live, "big/app0", "v1", false)
	verifyTree(t, live, "big/app1", "v1", false)
}

// killMidCopy copies srcRef (nine blobs) to repo:v1 through the balancer
// with one blob at a time, kills replica victim once two blobs are stored
// and a third is being sent (and the client too, with alsoClient), then
// reruns the copy and checks it transfers only what is missing.
func killMidCopy(t *testing.T, c *Cluster, srcRef, repo string, victim int, alsoClient bool) {
	t.Helper()
	const blobs = 9 // eight layers and the config
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	done := make(chan string, 1)
	go func() {
		_, stderr, code := ferryCtx(ctx, c, "copy", "--jobs", "1", srcRef, c.Balancer+"/"+repo+":v1")
		done <- fmt.Sprintf("exit %d: %s", code, strings.TrimSpace(stderr))
	}()
	// An upload is begun (POST answered) and not finished (PUT not
	// answered). nginx sends the HEAD, POST and PUT of a blob to the next
	// replica in turn, so the PUT in flight is often the victim's.
	count := func(method, status string) int {
		n := 0
		for _, l := range accessLines(t, c) {
			if f := strings.Fields(l); len(f) >= 3 && f[0] == method && strings.Contains(f[1], "/"+repo+"/blobs/uploads/") && f[2] == status {
				n++
			}
		}
		return n
	}
	stored := func() int { return count("PUT", "201") }
	var first string
	killedAt := -1
	for first == "" {
		select {
		case first = <-done:
		case <-time.After(10 * time.Millisecond):
			if n := stored(); killedAt < 0 && n >= 2 && count("POST", "202") > n {
				time.Sleep(50 * time.Millisecond)
				if alsoClient {
					cancel()
				}
				if err := c.Kill(victim); err != nil {
					t.Fatal(err)
				}
				killedAt = stored()
			}
		}
	}
	before := stored()
	t.Logf("%s: replica %d killed after %d blobs were stored (client killed too: %t); first copy: %s; %d blobs stored",
		repo, victim, killedAt, alsoClient, first, before)
	if killedAt < 0 || killedAt >= blobs {
		t.Fatalf("the copy finished before replica %d was killed; make it larger", victim)
	}
	for _, l := range accessLines(t, c) {
		if f := strings.Fields(l); len(f) >= 3 && strings.HasPrefix(f[2], "5") && strings.Contains(f[1], "/"+repo+"/") {
			t.Logf("nginx during the kill: %s", l)
		}
	}
	r := copyJSON(t, c, srcRef, c.Balancer+"/"+repo+":v1")
	t.Logf("%s: rerun: %d blobs copied (%d bytes), %d skipped", repo, r.BlobsCopied, r.Bytes, r.BlobsSkipped)
	if r.BlobsCopied+r.BlobsSkipped != blobs {
		t.Errorf("rerun: %d copied + %d skipped, want %d blobs", r.BlobsCopied, r.BlobsSkipped, blobs)
	}
	if r.BlobsSkipped < before || r.BlobsCopied > blobs-before {
		t.Errorf("rerun copied %d and skipped %d, but %d blobs were stored before: it should transfer only the other %d", r.BlobsCopied, r.BlobsSkipped, before, blobs-before)
	}
	if alsoClient && r.BlobsCopied == 0 {
		t.Errorf("the interrupted copy had stored everything already: nothing was left for the rerun")
	}
}

// serveOnce runs ferry serve on the cluster's configuration with extra
// environment and returns its stderr and exit code; a serve that starts
// is stopped after four seconds and reported as exit 0.
func serveOnce(t *testing.T, c *Cluster, env ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ferryPath, "serve", "--addr", "127.0.0.1:0", "--config", c.Config)
	cmd.Env = append(c.Env(), env...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok && ctx.Err() == nil {
		return errb.String(), ee.ExitCode()
	}
	return errb.String(), 0
}

// TestSecretChecked: on S3, a replica without http.secret does not start,
// nor does one whose secret differs from a running replica's (the startup
// self-test finds that replica's marker through the bucket).
func TestSecretChecked(t *testing.T) {
	c := newCluster(t, 1, func(o *Options) { o.NoBalancer = true })
	stderr, code := serveOnce(t, c, "FERRY_HTTP_SECRET=", "REGISTRY_HTTP_SECRET=")
	if code != 1 || !strings.Contains(stderr, "http.secret is required") {
		t.Errorf("serve without a secret: exit %d: %s", code, stderr)
	}
	stderr, code = serveOnce(t, c, "FERRY_HTTP_SECRET=another-secret")
	if code != 1 || !strings.Contains(stderr, "http.secret differs") || !strings.Contains(stderr, "/ferry/replicas/") {
		t.Errorf("serve with another secret: exit %d: %s", code, stderr)
	}
	// The secret from distribution's own variable, equal to the cluster's:
	// it starts.
	stderr, code = serveOnce(t, c, "FERRY_HTTP_SECRET=", "REGISTRY_HTTP_SECRET="+c.opts.Secret)
	if code != 0 {
		t.Errorf("serve with the same secret in REGISTRY_HTTP_SECRET: exit %d: %s", code, stderr)
	}
}

// TestGCOnSharedStorage: storage gc --config on the bucket refuses while a
// replica accepts writes (flag or not), refuses without
// --i-stopped-all-replicas once they are stopped, runs with it; and runs
// without it while every running replica is read-only.
func TestGCOnSharedStorage(t *testing.T) {
	c := newCluster(t, 2)
	src := fixture.NewRegistry(t)
	urls := fixture.NewURLServer(t)
	src.Push(t, "gc/src", "v1", urls.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.9", Layers: 2, Seed: 5}))
	copyJSON(t, c, src.Ref("gc/src", "v1"), c.Balancer+"/gc/app:v1")
	orphan := randomBytes(4096, 42)
	upload(t, c.Replicas, "gc/app", orphan, nil)
	od, _, _ := v1.SHA256(bytes.NewReader(orphan))

	gc := func(args ...string) (string, string, int) {
		return ferry(t, c, append([]string{"storage", "gc", "--config", c.Config}, args...)...)
	}
	for _, args := range [][]string{{"--dry-run"}, {"--dry-run", "--i-stopped-all-replicas"}} {
		if _, stderr, code := gc(args...); code != 1 || !strings.Contains(stderr, "2 replica(s) accept writes") {
			t.Errorf("gc %v under running replicas: exit %d: %s", args, code, stderr)
		}
	}
	c.Close()
	if _, stderr, code := gc("--dry-run"); code != 1 || !strings.Contains(stderr, "--i-stopped-all-replicas") {
		t.Errorf("gc without the flag: exit %d: %s", code, stderr)
	}
	out, stderr, code := gc("--dry-run", "--i-stopped-all-replicas")
	if code != 0 || !strings.Contains(out, od.String()) || !strings.Contains(out, "would remove 1 blobs") {
		t.Errorf("gc --dry-run --i-stopped-all-replicas: exit %d: %s%s", code, out, stderr)
	}
	ro := newCluster(t, 1, func(o *Options) { o.Prefix, o.ReadOnly, o.NoBalancer = c.Prefix, true, true })
	out, stderr, code = ferry(t, ro, "storage", "gc", "--config", c.Config)
	if code != 0 || !strings.Contains(out, "removed 1 blobs") || !strings.Contains(stderr, "read-only") {
		t.Errorf("gc beside a read-only replica: exit %d: %s%s", code, out, stderr)
	}
	if blobOK(t, ro.Replicas[0], "gc/app", od) {
		t.Errorf("orphan blob %s still served after gc", od)
	}
	verifyTree(t, ro, "gc/app", "v1", false)
}

// TestServeS3Flags: the short flags (--s3-endpoint, --s3-bucket) with
// credentials from the AWS environment serve the bucket.
func TestServeS3Flags(t *testing.T) {
	needS3(t)
	c := newCluster(t, 1, func(o *Options) {
		o.NoBalancer = true
		o.ServeArgs = []string{"--s3-endpoint", s3env.Endpoint, "--s3-bucket", s3env.Bucket, "--foreign-urls-allow", allowLoopback}
	})
	e := fixture.MicrosoftLike(t)
	repo := "flags" + randomHex(4) + "/servercore"
	r := copyJSON(t, c, "--foreign", "include", "--foreign-allow", allowLoopback, e.Reg.Ref(fixture.Repo, fixture.SingleTag), c.Balancer+"/"+repo+":ltsc2019")
	if r.Written.Digest != e.SingleID {
		t.Errorf("digest %s, want %s", r.Written.Digest, e.SingleID)
	}
	verifyTree(t, c, repo, "ltsc2019", true)
	pullEach(t, c, repo, "ltsc2019")
}
