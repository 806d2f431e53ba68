// Command scaleout measures how push and pull throughput through one
// address change with the number of ferry serve replicas behind it: 1, 2
// and 3 replicas on the same S3 bucket, behind nginx (round-robin), as
// internal/testkit/scaleout starts them. Not run by CI.
//
//	# an S3 server, e.g. radosgw on loopback as .ci/ceph-tests starts it:
//	D=/tmp/ferry-ceph BUCKET=ferry-ci bash .ci/ceph/ceph-up.sh
//	FERRY_S3_ENDPOINT=http://127.0.0.1:7480 FERRY_S3_BUCKET=ferry-ci \
//	AWS_ACCESS_KEY_ID=testaccesskey AWS_SECRET_ACCESS_KEY=testsecretkey \
//	  go run ./bench/scaleout -mib 128 -clients 1,4
//
// Each client pushes its own image (random, incompressible layers) from an
// OCI layout through the balancer with `ferry copy`, all clients at once,
// then pulls it back into a fresh layout; the report gives the aggregate
// MB/s per replica count and client count (median of -runs), and each
// replica count starts on a fresh prefix of the bucket so nothing is
// skipped.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferry-dev/ferry/internal/testkit/scaleout"
)

type config struct {
	mib, layers, runs int
	replicas, clients []int
	out               string
}

func main() {
	var c config
	var reps, clients string
	flag.IntVar(&c.mib, "mib", 128, "size of each client's image, MiB")
	flag.IntVar(&c.layers, "layers", 8, "layers per image")
	flag.IntVar(&c.runs, "runs", 2, "runs per replica and client count (the median is reported)")
	flag.StringVar(&reps, "replicas", "1,2,3", "replica counts to measure")
	flag.StringVar(&clients, "clients", "1,4", "numbers of clients pushing and pulling at once")
	flag.StringVar(&c.out, "out", "", "also write the report (markdown) to this file")
	flag.Parse()
	var err error
	if c.replicas, err = ints(reps); err == nil {
		c.clients, err = ints(clients)
	}
	if err == nil {
		err = run(context.Background(), c)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/scaleout:", err)
		os.Exit(1)
	}
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want a list of positive numbers", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// result is one measured cell: aggregate MB/s of all clients.
type result struct {
	replicas, clients int
	push, pull        float64
}

func run(ctx context.Context, c config) error {
	s3, err := scaleout.FromEnv()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "ferry-bench-scaleout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	ferry, err := scaleout.BuildFerry(ctx, ".", work)
	if err != nil {
		return err
	}
	maxClients := 0
	for _, n := range c.clients {
		maxClients = max(maxClients, n)
	}
	layouts := make([]string, maxClients)
	for i := range layouts {
		layouts[i] = filepath.Join(work, fmt.Sprintf("src-%d", i))
		if err := writeImage(layouts[i], c.mib, c.layers); err != nil {
			return err
		}
	}
	var results []result
	for _, n := range c.replicas {
		for _, k := range c.clients {
			var push, pull []float64
			for r := 0; r < c.runs; r++ {
				p, q, err := measure(ctx, ferry, s3, filepath.Join(work, fmt.Sprintf("r%d-c%d-%d", n, k, r)), n, layouts[:k], c.mib)
				if err != nil {
					return err
				}
				push, pull = append(push, p), append(pull, q)
				fmt.Fprintf(os.Stderr, "%d replica(s), %d client(s), run %d: push %.1f MB/s, pull %.1f MB/s\n", n, k, r+1, p, q)
			}
			results = append(results, result{replicas: n, clients: k, push: median(push), pull: median(pull)})
		}
	}
	rep := report(c, results)
	fmt.Print(rep)
	if c.out != "" {
		return os.WriteFile(c.out, []byte(rep), 0o644)
	}
	return nil
}

// measure starts n replicas behind nginx on a fresh prefix, pushes every
// layout at once through the balancer, then pulls them all back at once,
// and returns the aggregate push and pull MB/s.
func measure(ctx context.Context, ferry string, s3 scaleout.S3, dir string, n int, layouts []string, mib int) (float64, float64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, 0, err
	}
	cl, err := scaleout.Start(ctx, scaleout.Options{Ferry: ferry, Replicas: n, S3: s3, Dir: dir})
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	mb := float64(len(layouts)*mib) * (1 << 20) / 1e6
	all := func(args func(i int) []string) (float64, error) {
		t0 := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, len(layouts))
		for i := range layouts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd := exec.CommandContext(ctx, ferry, append([]string{"--progress", "none", "copy", "--jobs", "4"}, args(i)...)...)
				cmd.Env = cl.Env()
				if out, err := cmd.CombinedOutput(); err != nil {
					errs[i] = fmt.Errorf("ferry copy %v: %w: %s", args(i), err, out)
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return 0, err
			}
		}
		return mb / time.Since(t0).Seconds(), nil
	}
	ref := func(i int) string { return fmt.Sprintf("%s/bench/app%d:v1", cl.Balancer, i) }
	push, err := all(func(i int) []string { return []string{"oci:" + layouts[i] + ":v1", ref(i)} })
	if err != nil {
		return 0, 0, err
	}
	pull, err := all(func(i int) []string {
		return []string{ref(i), "oci:" + filepath.Join(dir, fmt.Sprintf("pull-%d", i)) + ":v1"}
	})
	return push, pull, err
}

func median(v []float64) float64 {
	s := append([]float64{}, v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func report(c config, rs []result) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "# ferry serve replicas on one S3 bucket: throughput through nginx\n\n")
	fmt.Fprintf(&b, "`go run ./bench/scaleout -mib %d -layers %d -runs %d` on %s (%d CPUs), S3 at %s; each client pushes and pulls its own %d MiB image (%d incompressible layers) with `ferry copy --jobs 4`, all clients at once. Aggregate MB/s, median of %d runs.\n\n",
		c.mib, c.layers, c.runs, host, numCPU(), os.Getenv("FERRY_S3_ENDPOINT"), c.mib, c.layers, c.runs)
	fmt.Fprintf(&b, "| replicas | clients | push MB/s | pull MB/s |\n|---:|---:|---:|---:|\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %d | %d | %.1f | %.1f |\n", r.replicas, r.clients, r.push, r.pull)
	}
	return b.String()
}

func numCPU() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\nprocessor") + 1
}

// writeImage writes an OCI layout at dir holding one image tagged v1 of
// layers random layers adding up to mib MiB: uncompressed layer media type,
// so each layer's diff ID is its digest.
func writeImage(dir string, mib, layers int) error {
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return err
	}
	put := func(b []byte) (string, error) {
		h := sha256.Sum256(b)
		d := hex.EncodeToString(h[:])
		return "sha256:" + d, os.WriteFile(filepath.Join(blobs, d), b, 0o644)
	}
	type desc struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int               `json:"size"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	var ls []desc
	var diffIDs []string
	size := mib << 20 / layers
	for range layers {
		b := make([]byte, size)
		if _, err := io.ReadFull(rand.Reader, b); err != nil {
			return err
		}
		d, err := put(b)
		if err != nil {
			return err
		}
		ls = append(ls, desc{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: d, Size: size})
		diffIDs = append(diffIDs, d)
	}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	cd, err := put(cfg)
	if err != nil {
		return err
	}
	man, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": desc{MediaType: "application/vnd.oci.image.config.v1+json", Digest: cd, Size: len(cfg)},
		"layers": ls,
	})
	md, err := put(man)
	if err != nil {
		return err
	}
	idx, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
		"manifests": []desc{{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: md, Size: len(man),
			Annotations: map[string]string{"org.opencontainers.image.ref.name": "v1"}}},
	})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}
