// Package version says which ferry is running: the module version, the
// commit and its time, the Go toolchain and the platform, all read from
// the build information the Go toolchain embeds (runtime/debug), never
// from a constant kept by hand. A release build of a tagged commit carries
// the tag (v1.2.3), a build of any other commit a pseudo-version
// (v0.0.0-20261207021500-0096675abcde, +dirty with uncommitted changes);
// a binary built outside a module checkout says "devel".
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
)

// Devel is the version of a binary built without module version
// information (go run, go test, a build outside the module's checkout).
const Devel = "devel"

// Info describes the running build.
type Info struct {
	// Version is the main module's version, or Devel.
	Version string `json:"version"`
	// Commit is the VCS revision the binary was built from; empty when
	// the build carried no VCS information (-buildvcs=false).
	Commit string `json:"commit"`
	// Modified reports uncommitted changes in the checkout at build time.
	Modified bool `json:"modified"`
	// Date is the commit's time (RFC 3339), the build's reproducible date.
	Date string `json:"date"`
	// GoVersion is the toolchain that built the binary.
	GoVersion string `json:"goVersion"`
	// Platform is the binary's os/arch.
	Platform string `json:"platform"`
}

// Get returns the running binary's build information.
func Get() Info { return get() }

var get = sync.OnceValue(func() Info {
	bi, _ := debug.ReadBuildInfo()
	return fromBuildInfo(bi)
})

// fromBuildInfo reads an Info out of bi (nil when the binary has none).
func fromBuildInfo(bi *debug.BuildInfo) Info {
	in := Info{Version: Devel, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi == nil {
		return in
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		in.Version = v
	}
	if bi.GoVersion != "" {
		in.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Commit = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		case "vcs.time":
			in.Date = s.Value
		}
	}
	return in
}

// UserAgent is the User-Agent every request ferry sends carries:
// "ferry/VERSION (os/arch)", so that a registry operator can tell from
// the logs which ferry talked to the registry.
func UserAgent() string {
	in := Get()
	return fmt.Sprintf("ferry/%s (%s)", in.Version, in.Platform)
}

// String is the one-line form `ferry --version` prints.
func (in Info) String() string {
	commit := in.Commit
	if commit == "" {
		commit = "unknown"
	} else if in.Modified {
		commit += "-dirty"
	}
	date := in.Date
	if date == "" {
		date = "unknown"
	}
	return fmt.Sprintf("ferry %s (commit %s, %s, %s, %s)", in.Version, commit, date, in.GoVersion, in.Platform)
}
