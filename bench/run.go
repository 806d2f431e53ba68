package main

import (
	"cmp"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

// results holds every measurement: scenario -> tool -> runs.
type results map[string]map[string][]measurement

func run(c config) error {
	if c.work == "" {
		dir, err := os.MkdirTemp("", "ferry-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		c.work = dir
	}
	ferryBin := filepath.Join(c.work, "ferry")
	if out, err := exec.Command("go", "build", releaseFlags[0], releaseFlags[1], "-o", ferryBin, "./cmd/ferry").CombinedOutput(); err != nil {
		return fmt.Errorf("build ferry (run from the repository root): %v\n%s", err, out)
	}
	t, err := install(c.work, c.tools, ferryBin)
	if err != nil {
		return err
	}
	t.connections = c.connections
	img, err := generate(c.cache, c.baseMiB, c.deltaMiB)
	if err != nil {
		return err
	}
	src, err := startReference(t.bin["registry"], filepath.Join(c.work, "src-root"), "")
	if err != nil {
		return err
	}
	defer src.stop()
	dst, err := startFerry(ferryBin, filepath.Join(c.work, "dst-root"))
	if err != nil {
		return err
	}
	defer dst.stop()
	if err := t.trustPlainHTTP(src.host, dst.host); err != nil {
		return err
	}
	// Seed the source: the image, and the same image with a foreign base.
	if m := measure([]string{ferryBin, "copy", "--progress", "none", "oci:" + img.Layout + ":v1", src.host + "/win/app:v1"}, t.env); m.err != nil {
		return m.err
	}
	urls, err := startURLServer(img.blobPath(img.Base), c.capMBps)
	if err != nil {
		return err
	}
	defer urls.stop()
	if _, err := putForeignImage(src.host, "win/foreign", "win/app", img, urls.url); err != nil {
		return err
	}

	if slices.Contains(c.scenarios, "sync") {
		if err := seedSync(ferryBin, src.host, c.work, t.env); err != nil {
			return err
		}
	}
	limits := measureLimits(c.work)
	res := results{}
	for r := 0; r < c.runs; r++ {
		for _, scenario := range c.scenarios {
			if scenario == "sync" || scenario == "mirror" {
				continue // their own sections, below
			}
			if res[scenario] == nil {
				res[scenario] = map[string][]measurement{}
			}
			// Alternate the order from run to run, so no tool always
			// goes first into a cold cache.
			order := append([]string(nil), c.tools...)
			if r%2 == 1 {
				sort.Sort(sort.Reverse(sort.StringSlice(order)))
			}
			for _, tool := range order {
				if pseudoTool(tool) && scenario == "foreign" {
					continue // the minimal client does not fetch URLs
				}
				if tool == "regsync" {
					continue // regsync only syncs
				}
				m := runOne(t, tool, scenario, r, src.host, dst.host, img, c.work)
				if m.err != nil {
					fmt.Fprintf(os.Stderr, "%s %s run %d: %v\n", tool, scenario, r+1, m.err)
				} else {
					fmt.Fprintf(os.Stderr, "%-7s %-8s run %d: %6.2fs %5.1f MiB\n", tool, scenario, r+1, m.seconds, float64(m.rss)/(1<<20))
				}
				res[scenario][tool] = append(res[scenario][tool], m)
			}
		}
	}
	report := render(c, img, limits, res)
	if slices.Contains(c.scenarios, "sync") {
		section, err := syncScenario(c, t, src.host)
		if err != nil {
			return fmt.Errorf("sync scenario: %w", err)
		}
		report += section
	}
	if slices.Contains(c.scenarios, "mirror") {
		section, err := mirrorScenario(c, t, ferryBin, src.host, img)
		if err != nil {
			return fmt.Errorf("mirror scenario: %w", err)
		}
		report += section
	}
	fmt.Print(report)
	if c.out != "" {
		doc := "# Performance\n\nferry against crane " + craneVersion + ", regctl " + regctlVersion + " and the system's skopeo, measured on one machine in one run by\n\n" +
			"    go run ./bench " + strings.Join(os.Args[1:], " ") + "\n\n" +
			"(see bench/main.go for what each scenario runs). Compare ratios within one run only: timings move by 20-30% from run to run on shared machines.\n\n" + report
		return os.WriteFile(c.out, []byte(doc), 0o644)
	}
	return nil
}

// runOne runs one tool once on one scenario into a fresh repository and
// checks what it produced.
func runOne(t *tools, tool, scenario string, r int, src, dst string, img *image, work string) measurement {
	repo := fmt.Sprintf("bench/%s-%s-%d", scenario, tool, r)
	j := job{src: src + "/win/app:v1", dst: dst + "/" + repo + ":v1", layout: filepath.Join(work, "pull-"+tool)}
	switch scenario {
	case "push":
		j.layout = img.Layout
	case "foreign":
		j.src = src + "/win/foreign:v1"
	}
	// Write back what earlier runs left dirty in the page cache, so that
	// the kernel's writeback does not land on this run's clock.
	exec.Command("sync").Run()
	var m measurement
	if pseudoTool(tool) {
		m = ceiling(scenario, j, img, tool == hashingCeilingTool)
	} else {
		argv, err := t.argv(tool, scenario, j)
		if err != nil {
			return measurement{err: err}
		}
		if tool == "skopeo" {
			forgetBlobLocations(t.env)
		}
		m = measure(argv, t.env)
	}
	if m.err != nil {
		return m
	}
	switch scenario {
	case "pull":
		defer os.RemoveAll(j.layout)
		if _, err := os.Stat(filepath.Join(j.layout, "blobs", "sha256", img.Base.Digest[len("sha256:"):])); err != nil {
			m.err = fmt.Errorf("%s pull: the layout lacks the base layer", tool)
		}
	case "foreign":
		if !hasBlob(dst, repo, img.Base.Digest) {
			m.err = fmt.Errorf("%s: did not copy the foreign base layer (cannot include foreign layers)", tool)
		}
	default:
		if got := head(dst, repo, "v1"); got != img.Manifest.Digest {
			m.err = fmt.Errorf("%s %s: destination holds %q, want %s", tool, scenario, got, img.Manifest.Digest)
		}
	}
	return m
}

// forgetBlobLocations removes skopeo's blob-info cache, in which it
// remembers where blobs were pushed before and mounts them from there:
// every run must transfer every byte. As root the cache is
// /var/lib/containers/cache; otherwise it is under the bench's HOME.
func forgetBlobLocations(env []string) {
	os.Remove("/var/lib/containers/cache/blob-info-cache-v1.boltdb")
	for _, e := range env {
		if home, ok := strings.CutPrefix(e, "HOME="); ok {
			os.RemoveAll(filepath.Join(home, ".local", "share", "containers", "cache"))
		}
	}
}

// machine is what the machine itself can do, measured in the same run.
type machine struct {
	cpus                      int
	sha256MBps, loopMBps, dwr float64
}

func measureLimits(work string) machine {
	m := machine{cpus: runtime.NumCPU()}
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	h := sha256.New()
	start := time.Now()
	for i := 0; i < 8; i++ {
		h.Write(buf)
	}
	m.sha256MBps = float64(8*len(buf)) / 1e6 / time.Since(start).Seconds()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err == nil {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i < 16; i++ {
				w.Write(buf)
			}
		})}
		go srv.Serve(l)
		start = time.Now()
		if resp, err := http.Get("http://" + l.Addr().String()); err == nil {
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			m.loopMBps = float64(n) / 1e6 / time.Since(start).Seconds()
		}
		srv.Close()
	}

	p := filepath.Join(work, "disk-probe")
	if f, err := os.Create(p); err == nil {
		start = time.Now()
		for i := 0; i < 16; i++ {
			f.Write(buf)
		}
		f.Sync()
		f.Close()
		m.dwr = float64(16*len(buf)) / 1e6 / time.Since(start).Seconds()
		os.Remove(p)
	}
	return m
}

func median(ms []measurement) (sec float64, rss int64, ok bool) {
	var secs []float64
	var rsss []int64
	for _, m := range ms {
		if m.err == nil {
			secs = append(secs, m.seconds)
			rsss = append(rsss, m.rss)
		}
	}
	if len(secs) == 0 || len(secs) < len(ms) {
		return 0, 0, false
	}
	return middle(secs), middle(rsss), true
}

// middle returns the median of v (the upper one of an even count), or
// zero when v is empty; v is left as it is.
func middle[T cmp.Ordered](v []T) T {
	if len(v) == 0 {
		var zero T
		return zero
	}
	s := slices.Sorted(slices.Values(v))
	return s[len(s)/2]
}

func render(c config, img *image, lim machine, res results) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Results\n\nImage: Windows-like, OCI, a %d MiB base and a %d MiB delta layer, %.0f MB gzip. Registries on loopback: the reference registry %s (source) and ferry serve (destination; the sync scenario's is its own). %d runs per tool, alternating; medians. Foreign scenario: base layer at a URL capped at %.0f MB/s per connection, ferry with --foreign-connections %d.\n\n",
		c.baseMiB, c.deltaMiB, float64(img.Bytes())/1e6, registryVersion, c.runs, c.capMBps, c.connections)
	fmt.Fprintf(&b, "Machine, same run: %d CPUs; sha256 %.0f MB/s on one core; loopback HTTP %.0f MB/s; disk write %.0f MB/s.\n\n", lim.cpus, lim.sha256MBps, lim.loopMBps, lim.dwr)
	for _, scenario := range c.scenarios {
		if scenario == "mirror" || scenario == "sync" {
			continue // their own tables (mirror.go, sync.go)
		}
		fsec, _, fok := median(res[scenario]["ferry"])
		fmt.Fprintf(&b, "### %s\n\n| tool | median s | MB/s | peak RSS MiB | ferry's time / tool's |\n| --- | ---: | ---: | ---: | ---: |\n", scenario)
		for _, tool := range c.tools {
			sec, rss, ok := median(res[scenario][tool])
			if !ok {
				why := "failed"
				for _, m := range res[scenario][tool] {
					if m.err != nil {
						// The tool's last words say why; the first line of
						// its output is often a progress message.
						lines := strings.Split(strings.TrimSpace(m.err.Error()), "\n")
						why = lines[len(lines)-1]
						if len(lines) > 1 {
							why = strings.SplitN(lines[0], ":", 2)[0] + ": " + why
						}
						break
					}
				}
				if len(res[scenario][tool]) > 0 {
					fmt.Fprintf(&b, "| %s | — | — | — | %s |\n", tool, strings.ReplaceAll(why, "|", "/"))
				}
				continue
			}
			ratio := "—"
			if fok && tool != "ferry" {
				ratio = fmt.Sprintf("%.2f", fsec/sec)
			}
			mem := fmt.Sprintf("%.1f", float64(rss)/(1<<20))
			if pseudoTool(tool) {
				tool, mem = pseudoLabel[tool], "—"
			}
			fmt.Fprintf(&b, "| %s | %.2f | %.0f | %s | %s |\n", tool, sec, float64(img.Bytes())/1e6/sec, mem, ratio)
		}
		b.WriteString("\n")
	}
	return b.String()
}
