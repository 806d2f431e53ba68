package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// The sync scenario mirrors many images sharing one base, as a nightly
// Windows mirror does: 8 tags of one repository and 2 app repositories,
// each the bench image plus a small layer of its own, from the reference
// registry into an empty reference registry (a new one per tool and run,
// behind a TCP proxy that counts the bytes sent to it); then the same
// again, which has nothing to do (the no-op rerun). Peers: skopeo sync
// (same YAML; it flattens repository paths), regsync (pinned with
// regctl), and a loop of crane copy; beside them, the floor a minimal
// in-process client sets (every unique blob once, all at once, hashed)
// and the time of the base layer alone. Its report is its own section.

// syncImages are the images the sync scenario mirrors: repository -> tags.
var syncImages = []struct {
	repo string
	tags []string
}{
	{"win/servercore", []string{"t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8"}},
	{"apps/one", []string{"v1"}},
	{"apps/two", []string{"v1"}},
}

// syncTools are the tools the sync scenario compares.
var syncTools = map[string]bool{"ferry": true, "skopeo": true, "regsync": true, "crane": true}

// seedSync pushes the sync scenario's images to the source: win/app:v1
// plus a 1 MiB layer of its own each.
func seedSync(ferryBin, src, work string, env []string) error {
	for i, im := range syncImages {
		for j, tag := range im.tags {
			dir := filepath.Join(work, "sync-layer", fmt.Sprintf("%d-%d", i, j))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			b := make([]byte, 1<<20)
			rng := rand.New(rand.NewPCG(uint64(i), uint64(j)))
			for k := range b {
				b[k] = byte(rng.Uint32())
			}
			if err := os.WriteFile(filepath.Join(dir, "app.bin"), b, 0o644); err != nil {
				return err
			}
			argv := []string{ferryBin, "append", "--progress", "none", "--base", src + "/win/app:v1", "--layer", dir, "-t", src + "/" + im.repo + ":" + tag}
			if m := measure(argv, env); m.err != nil {
				return m.err
			}
		}
	}
	return nil
}

// syncArgv writes the tool's configuration for mirroring src into
// dst/prefix and returns its command line.
func (t *tools) syncArgv(tool, src, dst, prefix, work string) ([]string, error) {
	cfg := filepath.Join(work, "sync-"+tool+".yaml")
	var b strings.Builder
	switch tool {
	case "ferry", "skopeo":
		fmt.Fprintf(&b, "%s:\n  tls-verify: false\n  images:\n", src)
		for _, im := range syncImages {
			fmt.Fprintf(&b, "    %s: [%s]\n", im.repo, strings.Join(im.tags, ", "))
		}
	case "regsync":
		fmt.Fprintf(&b, "version: 1\ncreds:\n  - registry: %s\n    tls: disabled\n  - registry: %s\n    tls: disabled\ndefaults:\n  parallel: 4\nsync:\n", src, dst)
		for _, im := range syncImages {
			fmt.Fprintf(&b, "  - source: %s/%s\n    target: %s/%s/%s\n    type: repository\n    tags:\n      allow: [%q]\n",
				src, im.repo, dst, prefix, im.repo, "^("+strings.Join(im.tags, "|")+")$")
		}
	case "crane":
		var cmds []string
		for _, im := range syncImages {
			for _, tag := range im.tags {
				cmds = append(cmds, fmt.Sprintf("%s copy %s/%s:%s %s/%s/%s:%s", t.bin["crane"], src, im.repo, tag, dst, prefix, im.repo, tag))
			}
		}
		return []string{"/bin/sh", "-c", strings.Join(cmds, " && ")}, nil
	default:
		return nil, fmt.Errorf("%s sync: %w", tool, errUnsupported)
	}
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	switch tool {
	case "ferry":
		return []string{t.bin["ferry"], "sync", "--progress", "none", cfg, dst + "/" + prefix}, nil
	case "skopeo":
		return []string{t.bin["skopeo"], "sync", "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false", cfg, dst + "/" + prefix}, nil
	}
	return []string{t.bin["regsync"], "once", "-c", cfg}, nil
}

// syncScenario runs the sync scenario c.runs times, each tool into its
// own empty reference registry behind a counting proxy, and returns its
// report section: first run and no-op rerun, bytes sent to the
// destination against the unique bytes, and the floor a minimal client
// sets.
func syncScenario(c config, t *tools, src string) (string, error) {
	refs, err := syncRefs(src)
	if err != nil {
		return "", err
	}
	unique := refs.uniqueBytes()
	loadBefore := loadAverage()
	var order []string
	for _, tool := range c.tools {
		if syncTools[tool] {
			order = append(order, tool)
		}
	}
	order = append(order, syncFloorTool, syncBaseTool)
	first, rerun := map[string][]measurement{}, map[string][]measurement{}
	sent := map[string][]int64{}
	for r := 0; r < c.runs; r++ {
		tools := append([]string(nil), order...)
		if r%2 == 1 {
			slices.Reverse(tools)
		}
		for _, tool := range tools {
			f, re, n, err := runSync(c, t, tool, r, src, refs)
			if err != nil {
				return "", err
			}
			first[tool] = append(first[tool], f)
			rerun[tool] = append(rerun[tool], re)
			sent[tool] = append(sent[tool], n)
			for label, m := range map[string]measurement{"first": f, "rerun": re} {
				if m.err != nil {
					fmt.Fprintf(os.Stderr, "sync %s %s run %d: %v\n", tool, label, r+1, m.err)
				} else if m.seconds > 0 {
					fmt.Fprintf(os.Stderr, "sync %-7s %-5s run %d: %6.2fs %5.1f MiB, %d bytes sent\n", tool, label, r+1, m.seconds, float64(m.rss)/(1<<20), n)
				}
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "### sync\n\n%d images (%d repositories, every image the bench image plus a 1 MiB layer of its own), %.0f MB of unique blobs, from the reference registry into an empty reference registry %s (a new one per tool and run), first run then the no-op rerun; bytes sent are what the tool sent to the destination (requests and bodies, counted by a TCP proxy in front of it) per first run. Load average (1 min) %s before, %s after.\n\n",
		refs.count(), len(syncImages), float64(unique)/1e6, registryVersion, loadBefore, loadAverage())
	b.WriteString("| tool | first run s | MB/s | bytes sent / unique | no-op rerun s | ferry's first run / tool's |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
	fsec, _, fok := median(first["ferry"])
	for _, tool := range order {
		sec, _, ok := median(first[tool])
		label := syncLabel[tool]
		if label == "" {
			label = tool
		}
		if !ok {
			fmt.Fprintf(&b, "| %s | — | — | — | — | failed |\n", label)
			continue
		}
		ratio, again := "—", "—"
		if fok && tool != "ferry" {
			ratio = fmt.Sprintf("%.2f", fsec/sec)
		}
		if rsec, _, rok := median(rerun[tool]); rok && rsec > 0 {
			again = fmt.Sprintf("%.2f", rsec)
		}
		fmt.Fprintf(&b, "| %s | %.2f | %.0f | %.2f | %s | %s |\n", label, sec, float64(unique)/1e6/sec, float64(middle(sent[tool]))/float64(unique), again, ratio)
	}
	b.WriteString("\n")
	return b.String(), nil
}

// The sync scenario's in-process rows: the floor (a minimal client moving
// every unique blob once, all at once, hashing as it streams, then
// mounting the shared ones into the other repositories and putting the
// manifests) and the base layer alone (one stream: no sync can finish
// before it).
const (
	syncFloorTool = "floor"
	syncBaseTool  = "base-alone"
)

var syncLabel = map[string]string{
	"ferry":       "ferry sync",
	"skopeo":      "skopeo sync",
	"crane":       "crane copy loop",
	syncFloorTool: "floor: minimal client, every unique blob at once, hashing",
	syncBaseTool:  "the base layer alone, one stream, hashing",
}

// runSync runs tool's first sync into a new empty registry and its no-op
// rerun, checks that the last image landed (skopeo: under the flattened
// path), and counts the bytes the first run sent. An error is the bench's
// own failure; a tool's is in its measurement.
func runSync(c config, t *tools, tool string, r int, src string, refs *syncSource) (first, rerun measurement, sent int64, err error) {
	root := filepath.Join(c.work, fmt.Sprintf("sync-dst-%s-%d", tool, r))
	defer os.RemoveAll(root)
	defer os.Remove(root + "-config.yml")
	reg, err := startReference(t.bin["registry"], root, "")
	if err != nil {
		return first, rerun, 0, err
	}
	defer reg.stop()
	proxy, err := startCountingProxy(reg.host)
	if err != nil {
		return first, rerun, 0, err
	}
	defer proxy.stop()
	dst := proxy.addr
	exec.Command("sync").Run()
	switch tool {
	case syncFloorTool, syncBaseTool:
		start := time.Now()
		err := refs.floor(dst, "sync", tool == syncBaseTool)
		first = measurement{seconds: time.Since(start).Seconds(), err: err}
		ceilingTransport.CloseIdleConnections() // so the proxy counts them
		return first, measurement{}, proxy.sent(), nil
	}
	argv, err := t.syncArgv(tool, src, dst, "sync", c.work)
	if err != nil {
		return measurement{err: err}, measurement{err: err}, 0, nil
	}
	if tool == "skopeo" {
		forgetBlobLocations(t.env)
	}
	first = measure(argv, t.env)
	sent = proxy.sent()
	if first.err != nil {
		return first, measurement{err: first.err}, sent, nil
	}
	last := syncImages[len(syncImages)-1]
	repo := "sync/" + last.repo
	if tool == "skopeo" {
		repo = "sync/" + filepath.Base(last.repo)
	}
	if head(reg.host, repo, last.tags[0]) == "" {
		first.err = fmt.Errorf("%s sync: %s:%s did not land", tool, repo, last.tags[0])
	}
	rerun = measure(argv, t.env)
	return first, rerun, sent, nil
}

// syncSource is what the sync scenario's source holds: each image's
// manifest and the blobs it lists.
type syncSource struct {
	src    string
	images []syncManifest
}

type syncManifest struct {
	repo, tag, mediaType string
	raw                  []byte
	blobs                []blobDesc
}

// syncRefs reads the manifests of the sync scenario's images from src.
func syncRefs(src string) (*syncSource, error) {
	s := &syncSource{src: src}
	for _, im := range syncImages {
		for _, tag := range im.tags {
			body, err := get(fmt.Sprintf("http://%s/v2/%s/manifests/%s", src, im.repo, tag))
			if err != nil {
				return nil, err
			}
			raw, err := io.ReadAll(body)
			body.Close()
			if err != nil {
				return nil, err
			}
			var m struct {
				MediaType string     `json:"mediaType"`
				Config    blobDesc   `json:"config"`
				Layers    []blobDesc `json:"layers"`
			}
			if err := json.Unmarshal(raw, &m); err != nil {
				return nil, fmt.Errorf("manifest %s:%s: %w", im.repo, tag, err)
			}
			s.images = append(s.images, syncManifest{repo: im.repo, tag: tag, mediaType: m.MediaType, raw: raw, blobs: append([]blobDesc{m.Config}, m.Layers...)})
		}
	}
	return s, nil
}

func (s *syncSource) count() int { return len(s.images) }

// uniqueBytes is the size of every distinct blob and manifest: what a
// sync that moves each byte once sends.
func (s *syncSource) uniqueBytes() int64 {
	var n int64
	seen := map[string]bool{}
	for _, m := range s.images {
		n += int64(len(m.raw))
		for _, d := range m.blobs {
			if !seen[d.Digest] {
				seen[d.Digest] = true
				n += d.Size
			}
		}
	}
	return n
}

// floor syncs the images to dst/prefix as a minimal client would: every
// distinct blob once, all at once, read from the source and hashed as it
// streams, into the first repository that needs it; then mounts into the
// other repositories; then the manifests. baseOnly moves just the largest
// blob and stops.
func (s *syncSource) floor(dst, prefix string, baseOnly bool) error {
	holder := map[string]string{} // digest -> repository that got it
	mounts := map[string]map[string]bool{}
	var blobs []blobDesc
	var largest blobDesc
	for _, m := range s.images {
		for _, d := range m.blobs {
			if _, ok := holder[d.Digest]; !ok {
				holder[d.Digest] = m.repo
				blobs = append(blobs, d)
				if d.Size > largest.Size {
					largest = d
				}
			} else if holder[d.Digest] != m.repo {
				if mounts[m.repo] == nil {
					mounts[m.repo] = map[string]bool{}
				}
				mounts[m.repo][d.Digest] = true
			}
		}
	}
	if baseOnly {
		blobs = []blobDesc{largest}
	}
	base := func(repo string) string { return fmt.Sprintf("http://%s/v2/%s/%s", dst, prefix, repo) }
	var g errgroup.Group
	for _, d := range blobs {
		g.Go(func() error {
			return pushBlob(base(holder[d.Digest]), d, func(d blobDesc) (io.ReadCloser, error) {
				r, err := get(fmt.Sprintf("http://%s/v2/%s/blobs/%s", s.src, holder[d.Digest], d.Digest))
				if err != nil {
					return nil, err
				}
				return hashingBody{r, sha256.New()}, nil
			})
		})
	}
	if err := g.Wait(); err != nil || baseOnly {
		return err
	}
	for repo, ds := range mounts {
		for dg := range ds {
			g.Go(func() error {
				u := fmt.Sprintf("%s/blobs/uploads/?mount=%s&from=%s/%s", base(repo), dg, prefix, holder[dg])
				resp, err := ceilingTransport.RoundTrip(mustRequest(http.MethodPost, u, nil))
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					return fmt.Errorf("mount %s into %s: %s", dg, repo, resp.Status)
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, m := range s.images {
		g.Go(func() error { return putManifest(base(m.repo), m.tag, m.mediaType, m.raw) })
	}
	return g.Wait()
}

// countingProxy forwards TCP connections to a registry and counts the
// bytes clients send through it.
type countingProxy struct {
	l     net.Listener
	addr  string
	up    atomic.Int64
	conns sync.WaitGroup
}

func startCountingProxy(upstream string) (*countingProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{l: l, addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			p.conns.Add(2)
			go func() {
				defer p.conns.Done()
				n, _ := io.Copy(u, c)
				p.up.Add(n)
				u.(*net.TCPConn).CloseWrite()
			}()
			go func() {
				defer p.conns.Done()
				io.Copy(c, u)
				c.Close()
				u.Close()
			}()
		}
	}()
	return p, nil
}

// sent returns the bytes sent so far, once the connections the client
// left open have closed (it has exited) or after a second.
func (p *countingProxy) sent() int64 {
	done := make(chan struct{})
	go func() { p.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
	}
	return p.up.Load()
}

func (p *countingProxy) stop() { p.l.Close() }

// loadAverage is the machine's 1-minute load average, as uptime shows it.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}
