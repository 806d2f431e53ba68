package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// tools knows where each tool's binary is and how to ask it for each
// scenario.
type tools struct {
	bin         map[string]string
	env         []string // HOME for regctl's configuration
	connections int
}

// job is one scenario's endpoints for one run.
type job struct {
	src, dst string // registry references, or an OCI layout directory
	layout   string // for pull: the directory to write; for push: the layout to read
}

// argv returns the command line of tool for scenario, or errUnsupported.
func (t *tools) argv(tool, scenario string, j job) ([]string, error) {
	b := t.bin[tool]
	switch tool + "/" + scenario {
	case "ferry/copy":
		return []string{b, "copy", "--progress", "none", j.src, j.dst}, nil
	case "ferry/pull":
		return []string{b, "copy", "--progress", "none", j.src, "oci:" + j.layout + ":v1"}, nil
	case "ferry/push":
		return []string{b, "copy", "--progress", "none", "oci:" + j.layout + ":v1", j.dst}, nil
	case "ferry/foreign":
		return []string{b, "copy", "--progress", "none", "--foreign", "include", "--foreign-allow", `^http://127\.0\.0\.1:`,
			"--foreign-connections", strconv.Itoa(t.connections), j.src, j.dst}, nil
	case "crane/copy":
		return []string{b, "copy", j.src, j.dst}, nil
	case "crane/pull":
		return []string{b, "pull", "--format", "oci", j.src, j.layout}, nil
	case "crane/push":
		return []string{b, "push", j.layout, j.dst}, nil
	case "crane/foreign":
		return []string{b, "copy", "--allow-nondistributable-artifacts", j.src, j.dst}, nil
	case "regctl/copy":
		return []string{b, "image", "copy", j.src, j.dst}, nil
	case "regctl/pull":
		return []string{b, "image", "copy", j.src, "ocidir://" + j.layout + ":v1"}, nil
	case "regctl/push":
		return []string{b, "image", "copy", "ocidir://" + j.layout + ":v1", j.dst}, nil
	case "regctl/foreign":
		return []string{b, "image", "copy", "--include-external", j.src, j.dst}, nil
	case "skopeo/copy":
		return []string{b, "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", "docker://" + j.src, "docker://" + j.dst}, nil
	case "skopeo/pull":
		return []string{b, "copy", "-q", "--src-tls-verify=false", "docker://" + j.src, "oci:" + j.layout + ":v1"}, nil
	case "skopeo/push":
		return []string{b, "copy", "-q", "--dest-tls-verify=false", "oci:" + j.layout + ":v1", "docker://" + j.dst}, nil
	case "skopeo/foreign":
		return []string{b, "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", "docker://" + j.src, "docker://" + j.dst}, nil
	}
	return nil, fmt.Errorf("%s %s: %w", tool, scenario, errUnsupported)
}

// measurement is one run of one tool.
type measurement struct {
	seconds float64
	rss     int64   // peak resident set, bytes
	cpu     float64 // the tool's user and system CPU time, seconds
	server  float64 // the CPU time of the server it talked to, seconds, when measured
	err     error
}

// measure runs argv and reports its wall time and peak RSS.
//
// The peak is read from /proc/PID/status (VmHWM) while the tool runs, not
// from rusage: Linux carries the parent's high-water mark into a child
// across fork and exec, so rusage would report the bench's own peak for a
// small tool.
func measure(argv, env []string) measurement {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return measurement{err: err}
	}
	done := make(chan struct{})
	peak := make(chan int64, 1)
	go func() {
		var hwm int64
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			// Before exec, /proc/PID shows the bench's own memory.
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid)); exe == argv[0] {
				if v := vmHWM(cmd.Process.Pid); v > hwm {
					hwm = v
				}
			}
			select {
			case <-done:
				peak <- hwm
				return
			case <-tick.C:
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	m := measurement{seconds: time.Since(start).Seconds(), rss: <-peak}
	if ps := cmd.ProcessState; ps != nil {
		m.cpu = (ps.UserTime() + ps.SystemTime()).Seconds()
	}
	if err != nil {
		out := strings.TrimSpace(stderr.String())
		if len(out) > 400 {
			out = out[len(out)-400:]
		}
		m.err = fmt.Errorf("%s: %v: %s", filepath.Base(argv[0]), err, out)
	}
	return m
}

// vmHWM returns a process's peak resident set in bytes, 0 when unknown.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// releaseFlags are the build flags of every Go tool in the bench.
var releaseFlags = []string{"-trimpath", "-ldflags=-s -w"}

// install finds or installs the tools and prepares their configuration.
func install(work string, names []string, ferryBin string) (*tools, error) {
	// Every Go tool is built the way release binaries are (-trimpath,
	// -s -w: no symbol table, which would otherwise count in the peak
	// RSS), into the bench's own directory, so that none is favoured.
	gobin := filepath.Join(work, "bin")
	t := &tools{bin: map[string]string{"ferry": ferryBin}}
	pkgs := map[string]string{
		"crane":    "github.com/google/go-containerregistry/cmd/crane@" + craneVersion,
		"regctl":   "github.com/regclient/regclient/cmd/regctl@" + regctlVersion,
		"regsync":  "github.com/regclient/regclient/cmd/regsync@" + regctlVersion,
		"registry": "github.com/distribution/distribution/v3/cmd/registry@" + registryVersion,
	}
	for _, n := range append(names, "registry") {
		if n == "ferry" || pseudoTool(n) {
			continue
		}
		if n == "skopeo" {
			p, err := exec.LookPath("skopeo")
			if err != nil {
				return nil, fmt.Errorf("skopeo: install it with the system package manager (or leave it out of -tools)")
			}
			t.bin[n] = p
			continue
		}
		fmt.Fprintf(os.Stderr, "installing %s\n", pkgs[n])
		cmd := exec.Command("go", "install", releaseFlags[0], releaseFlags[1], pkgs[n])
		cmd.Env = append(os.Environ(), "GOBIN="+gobin)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go install %s: %v\n%s", pkgs[n], err, out)
		}
		t.bin[n] = filepath.Join(gobin, n)
	}
	home := filepath.Join(work, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, err
	}
	t.env = append(os.Environ(), "HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"))
	return t, nil
}

// trustPlainHTTP tells regctl the loopback registries speak plain HTTP.
func (t *tools) trustPlainHTTP(hosts ...string) error {
	if _, ok := t.bin["regctl"]; !ok {
		return nil
	}
	for _, h := range hosts {
		cmd := exec.Command(t.bin["regctl"], "registry", "set", "--tls", "disabled", h)
		cmd.Env = t.env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("regctl registry set %s: %v\n%s", h, err, out)
		}
	}
	return nil
}
