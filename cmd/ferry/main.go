// Command ferry moves container images — Windows images and their foreign
// layers included — between registries, archives and registry storage.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ferry-dev/ferry/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
