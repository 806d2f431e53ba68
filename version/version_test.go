package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestFromBuildInfo: a release build's module version, commit, dirty
// flag and commit time come out of the build information; a build
// without them says devel with the running toolchain and platform.
func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.99.1",
		Main:      debug.Module{Path: "github.com/ferry-dev/ferry", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0096675abc"},
			{Key: "vcs.modified", Value: "true"},
			{Key: "vcs.time", Value: "2026-12-07T02:00:00Z"},
		},
	}
	got := fromBuildInfo(bi)
	want := Info{Version: "v1.2.3", Commit: "0096675abc", Modified: true, Date: "2026-12-07T02:00:00Z", GoVersion: "go1.99.1", Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if s := got.String(); !strings.Contains(s, "v1.2.3") || !strings.Contains(s, "0096675abc-dirty") || !strings.Contains(s, "go1.99.1") {
		t.Errorf("String() = %q", s)
	}

	bi.Main.Version = "(devel)"
	bi.Settings = nil
	if got := fromBuildInfo(bi); got.Version != Devel || got.Commit != "" {
		t.Errorf("(devel) build: %+v", got)
	}
	if got := fromBuildInfo(nil); got.Version != Devel || got.GoVersion != runtime.Version() {
		t.Errorf("no build info: %+v", got)
	}
}

// TestUserAgent: ferry/VERSION (os/arch).
func TestUserAgent(t *testing.T) {
	want := "ferry/" + Get().Version + " (" + runtime.GOOS + "/" + runtime.GOARCH + ")"
	if got := UserAgent(); got != want {
		t.Errorf("UserAgent() = %q, want %q", got, want)
	}
}
