// Command bench measures ferry against crane, regctl and skopeo on the same
// machine in the same run: registry-to-registry copy, pull into an OCI
// layout, push from one, and a foreign-layer copy with include from a
// bandwidth-capped URL server (as a CDN caps each connection); and, with
// -scenarios sync -tools ferry,skopeo,regsync,crane, a sync of 10 images
// sharing the base across 3 repositories into an empty reference
// registry, first run and no-op rerun, with the bytes each tool sends
// (bench/sync.go; the sizes: -base-mib 256 -delta-mib 256).
//
//	go run ./bench                      # 1 GiB base + 256 MiB delta, 3 runs
//	go run ./bench -base-mib 64 -delta-mib 16 -runs 1   # a quick look
//	go run ./bench -out docs/performance.md
//
// It installs its peers (crane, regctl and the reference registry with go
// install at pinned versions; skopeo must come from the system's package
// manager), generates a deterministic Windows-like image (cached), starts
// the reference registry as the source and ferry serve as the destination
// on loopback, and runs every tool on every scenario, alternating tools,
// each run into a fresh repository so nothing is skipped. It reports the
// median wall time, MB/s and peak RSS per tool and scenario, ferry's ratio
// to each peer, and the machine's own limits measured in the same run.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Pinned peer versions, installed with go install.
const (
	craneVersion    = "v0.22.1"
	regctlVersion   = "v0.11.7"
	registryVersion = "v3.1.2"
)

type config struct {
	baseMiB, deltaMiB int
	runs              int
	capMBps           float64
	connections       int
	tools             []string
	scenarios         []string
	out               string
	work              string
	cache             string
}

func main() {
	var c config
	var tools, scenarios string
	flag.IntVar(&c.baseMiB, "base-mib", 1024, "uncompressed size of the base layer, MiB")
	flag.IntVar(&c.deltaMiB, "delta-mib", 256, "uncompressed size of the delta layer, MiB")
	flag.IntVar(&c.runs, "runs", 3, "runs per tool and scenario (tools alternate within a run)")
	flag.Float64Var(&c.capMBps, "cap-mbps", 25, "per-connection bandwidth cap of the foreign URL server, MB/s (CDNs cap each connection)")
	flag.IntVar(&c.connections, "foreign-connections", 8, "ferry's --foreign-connections in the foreign scenario")
	flag.StringVar(&tools, "tools", "ferry,crane,regctl,skopeo,"+ceilingTool+","+hashingCeilingTool, "tools to compare ("+ceilingTool+": a minimal client in the bench's process that verifies nothing, to show what the registries allow; "+hashingCeilingTool+": the same client hashing every byte, to show what verification costs)")
	flag.StringVar(&scenarios, "scenarios", "copy,pull,push,foreign,mirror", "scenarios to run (mirror: pulls through ferry serve --proxy and the reference registry's proxy mode, cold and warm; bench/mirror.go)")
	flag.StringVar(&c.out, "out", "", "also write the report (markdown) to this file")
	flag.StringVar(&c.work, "work", "", "working directory (default: a new temporary directory, removed at the end)")
	flag.StringVar(&c.cache, "cache", filepath.Join(os.TempDir(), "ferry-bench-cache"), "where generated images are kept between runs")
	flag.Parse()
	c.tools = strings.Split(tools, ",")
	c.scenarios = strings.Split(scenarios, ",")
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
