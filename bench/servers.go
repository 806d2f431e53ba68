package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// proc is a server process the bench started.
type proc struct {
	host string
	cmd  *exec.Cmd
}

// cpuSeconds returns the user and system CPU time p has used so far, from
// /proc/PID/stat (Linux; clock ticks of 1/100 s, USER_HZ on every Linux
// architecture ferry builds for), or 0 when it cannot be read or p is nil.
func (p *proc) cpuSeconds() float64 {
	if p == nil || p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses and
	// may hold spaces: state is the first, utime the 12th, stime the 13th.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100
}

func (p *proc) stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			p.cmd.Process.Kill()
		}
	}
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitReady(host string) error {
	for i := 0; i < 200; i++ {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("registry at %s did not come up", host)
}

// startReference starts distribution's reference registry binary with a
// filesystem root, accepting foreign urls on loopback; extra is more of
// its configuration (YAML), e.g. a proxy section.
func startReference(bin, root, extra string) (*proc, error) {
	host, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
validation:
  manifests:
    urls:
      allow:
        - '^http://127\.0\.0\.1:'
%s`, root, host, extra)
	p := root + "-config.yml"
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", p)
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	return launch(cmd, host)
}

// startFerry starts ferry serve on a root, accepting foreign urls on
// loopback; args are more serve flags.
func startFerry(bin, root string, args ...string) (*proc, error) {
	host, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{"serve", "--root", root, "--addr", host, "--log-level", "error", "--foreign-urls-allow", `^http://127\.0\.0\.1:`}, args...)...)
	return launch(cmd, host)
}

// launch starts a registry process and waits until it answers on host;
// its output is in the error when it does not.
func launch(cmd *exec.Cmd, host string) (*proc, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pr := &proc{host: host, cmd: cmd}
	if err := waitReady(host); err != nil {
		pr.stop()
		return nil, fmt.Errorf("%w: %s", err, out.String())
	}
	return pr, nil
}

// throttled writes at most rate bytes per second per connection, as a CDN
// caps each connection.
type throttled struct {
	http.ResponseWriter
	rate  float64
	start time.Time
	n     int64
}

func (t *throttled) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		chunk := p
		if len(chunk) > 32<<10 {
			chunk = chunk[:32<<10]
		}
		n, err := t.ResponseWriter.Write(chunk)
		written += n
		t.n += int64(n)
		if err != nil {
			return written, err
		}
		p = p[n:]
		if ahead := time.Duration(float64(t.n)/t.rate*float64(time.Second)) - time.Since(t.start); ahead > 0 {
			time.Sleep(ahead)
		}
	}
	return written, nil
}

// urlServer serves file at /base with Range support, each connection
// capped at capMBps, and counts requests.
type urlServer struct {
	srv      *http.Server
	url      string
	requests atomic.Int64
}

func startURLServer(file string, capMBps float64) (*urlServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &urlServer{url: "http://" + l.Addr().String() + "/base"}
	u.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/base" {
			http.NotFound(w, r)
			return
		}
		u.requests.Add(1)
		f, err := os.Open(file)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		http.ServeContent(&throttled{ResponseWriter: w, rate: capMBps * 1e6, start: time.Now()}, r, "base", time.Time{}, f)
	})}
	go u.srv.Serve(l)
	return u, nil
}

func (u *urlServer) stop() { u.srv.Shutdown(context.Background()) }

// putForeignImage stores img under repo on host with its base layer made
// foreign (pointing at url): config and delta are mounted from fromRepo,
// the base blob is not in repo.
func putForeignImage(host, repo, fromRepo string, img *image, url string) (string, error) {
	for _, d := range []blobDesc{img.Config, img.Delta} {
		resp, err := http.Post(fmt.Sprintf("http://%s/v2/%s/blobs/uploads/?mount=%s&from=%s", host, repo, d.Digest, fromRepo), "", nil)
		if err != nil {
			return "", err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return "", fmt.Errorf("mount %s into %s: %s", d.Digest, repo, resp.Status)
		}
	}
	m, err := img.foreignManifest(url)
	if err != nil {
		return "", err
	}
	req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("http://%s/v2/%s/manifests/v1", host, repo), bytes.NewReader(m))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		return "", fmt.Errorf("put the foreign manifest: %s %s", resp.Status, b)
	}
	return resp.Header.Get("Docker-Content-Digest"), nil
}

// head returns the digest a registry serves for a manifest, or "" when it
// has none.
func head(host, repo, ref string) string {
	req, _ := http.NewRequest(http.MethodHead, fmt.Sprintf("http://%s/v2/%s/manifests/%s", host, repo, ref), nil)
	req.Header.Set("Accept", strings.Join([]string{"application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"}, ","))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return resp.Header.Get("Docker-Content-Digest")
}

// hasBlob reports whether a registry holds a blob in repo.
func hasBlob(host, repo, digest string) bool {
	resp, err := http.Head(fmt.Sprintf("http://%s/v2/%s/blobs/%s", host, repo, digest))
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

var errUnsupported = errors.New("not supported by this tool")
