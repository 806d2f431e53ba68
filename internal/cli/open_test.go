package cli

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/opener"
	"github.com/ferry-dev/ferry/store"
)

// TestForeignRefusedHint: the flags and settings that let foreign layers
// through are the CLI's advice, on any error wrapping ErrForeignRefused.
func TestForeignRefusedHint(t *testing.T) {
	err := fmt.Errorf("copy: %w: the destination refused manifest sha256:abc", store.ErrForeignRefused)
	h := hint(err)
	for _, want := range []string{"--foreign include", "--foreign localize", "validation.manifests.urls.allow", "--foreign-urls-allow"} {
		if !strings.Contains(h, want) {
			t.Errorf("hint %q lacks %q", h, want)
		}
	}
	var b bytes.Buffer
	printErr(&b, err)
	if !strings.Contains(b.String(), "ferry: hint: copy with --foreign localize") {
		t.Errorf("printErr wrote %q; want the hint line", b.String())
	}
}

// TestFlagsMakeNetwork: the global flags become the opener's Network, the
// one value the registry, fetcher and engine options derive from; without
// flags it is opener.DefaultNetwork.
func TestFlagsMakeNetwork(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want opener.Network
	}{
		{nil, opener.DefaultNetwork()},
		{[]string{"--insecure", "--stall-timeout", "3s", "--retry-delay", "10ms"}, opener.Network{Insecure: true, StallTimeout: 3 * time.Second, RetryDelay: 10 * time.Millisecond}},
		{[]string{"--stall-timeout", "0"}, opener.Network{}},
	} {
		var out, errb bytes.Buffer
		g := &globals{stdout: &out, stderr: &errb}
		root := newRootCmd(g)
		// tags refuses a local location before any request.
		root.SetArgs(append(tc.args, "tags", "oci:"+t.TempDir()))
		err := root.ExecuteContext(context.Background())
		if ExitCode(err) != 2 || !strings.Contains(fmt.Sprint(err), "needs a registry reference") {
			t.Errorf("%v: tags oci: = %v (exit %d); want a usage error", tc.args, err, ExitCode(err))
		}
		if g.open == nil {
			t.Fatalf("%v: no opener", tc.args)
		}
		if got := g.open.Network(); got != tc.want {
			t.Errorf("%v: Network = %+v, want %+v", tc.args, got, tc.want)
		}
	}
}
