// Command ferry moves container images — Windows images and their foreign
// layers included — between registries, archives and registry storage.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/ferry-dev/ferry/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := profile(os.Getenv("FERRY_CPUPROFILE"))
	code := cli.Main(ctx, os.Args[1:])
	stopProfile()
	stop()
	os.Exit(code)
}

// profile writes a CPU profile of the whole run to path, when set: the
// performance work's pprof hook (go tool pprof ferry PATH).
func profile(path string) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferry: FERRY_CPUPROFILE: %v\n", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
