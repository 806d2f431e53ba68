// Package scaleout runs ferry the way a team that outgrew one registry host
// does: several `ferry serve` processes (replicas) on one S3 bucket, and
// nginx balancing one address across them round-robin. Its tests and the
// scale-out benchmark (bench/) start such a cluster on a real S3 server —
// in CI, Ceph's radosgw on loopback, brought up by .ci/ceph-tests.
//
// Each cluster writes a distribution configuration (the shape docs/s3.md
// documents) whose storage.s3.rootdirectory is a prefix of its own, so
// clusters share a bucket without seeing each other's images.
package scaleout

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// S3 says where the S3 server is. The secret key travels to replicas in
// their environment, never on a command line.
type S3 struct {
	Endpoint  string // e.g. http://127.0.0.1:7480
	Bucket    string // an existing bucket
	Region    string
	AccessKey string
	SecretKey string
}

// ErrNoS3 means the environment names no S3 server (FromEnv).
var ErrNoS3 = errors.New("no S3 server: FERRY_S3_ENDPOINT is not set (.ci/ceph-tests starts radosgw on loopback and sets it)")

// FromEnv reads the S3 server from FERRY_S3_ENDPOINT, FERRY_S3_BUCKET
// (default "ferry"), AWS_REGION (default us-east-1), AWS_ACCESS_KEY_ID
// and AWS_SECRET_ACCESS_KEY. It returns ErrNoS3 when FERRY_S3_ENDPOINT is
// not set.
func FromEnv() (S3, error) {
	s := S3{
		Endpoint:  os.Getenv("FERRY_S3_ENDPOINT"),
		Bucket:    os.Getenv("FERRY_S3_BUCKET"),
		Region:    os.Getenv("AWS_REGION"),
		AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"),
		SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
	}
	if s.Endpoint == "" {
		return s, ErrNoS3
	}
	if s.Bucket == "" {
		s.Bucket = "ferry"
	}
	if s.Region == "" {
		s.Region = "us-east-1"
	}
	if s.AccessKey == "" || s.SecretKey == "" {
		return s, errors.New("FERRY_S3_ENDPOINT is set but AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is not")
	}
	return s, nil
}

// Options describe a cluster.
type Options struct {
	// Ferry is the ferry binary.
	Ferry string
	// Nginx is the nginx binary; "nginx" on PATH when empty. With one
	// replica and NoBalancer, nginx is not started.
	Nginx string
	// NoBalancer leaves nginx out: Balancer is then replica 0's address.
	NoBalancer bool
	// Replicas is how many ferry serve processes to start (default 3).
	Replicas int
	// S3 is the storage.
	S3 S3
	// Prefix is the rootdirectory inside the bucket; a random one when
	// empty.
	Prefix string
	// Secret is http.secret for every replica; a random one when empty.
	Secret string
	// ReadOnly starts the replicas in distribution's read-only mode.
	ReadOnly bool
	// ServeArgs, when set, replace "--config <the cluster's file>" on the
	// replicas' command line (e.g. the --s3-* flags).
	ServeArgs []string
	// Dir holds the configuration, the logs (replica-N.log, nginx's
	// error.log and access.log) and nginx's files.
	Dir string
}

// Cluster is a running set of replicas behind nginx.
type Cluster struct {
	// Balancer is the host:port clients use.
	Balancer string
	// Replicas are the replicas' host:port, in start order.
	Replicas []string
	// Config is the distribution configuration file the replicas use.
	Config string
	// Prefix is the rootdirectory in the bucket.
	Prefix string
	// AccessLog is nginx's access log: one line per request, "METHOD URI
	// STATUS UPSTREAM UPSTREAM_STATUS".
	AccessLog string

	opts  Options
	procs []*exec.Cmd
	nginx *exec.Cmd
	mu    sync.Mutex
}

// Start starts opts.Replicas ferry serve processes on the bucket, then
// nginx in front of them, and waits until the balancer answers.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Replicas == 0 {
		opts.Replicas = 3
	}
	if opts.Nginx == "" {
		opts.Nginx = "nginx"
	}
	if opts.Prefix == "" {
		opts.Prefix = "/t-" + randomHex(6)
	}
	if opts.Secret == "" {
		opts.Secret = randomHex(16)
	}
	c := &Cluster{opts: opts, Prefix: opts.Prefix, Config: filepath.Join(opts.Dir, "registry.yml")}
	if err := os.WriteFile(c.Config, []byte(Config(opts.S3, opts.Prefix, opts.ReadOnly)), 0o600); err != nil {
		return nil, fmt.Errorf("scaleout: %w", err)
	}
	for i := 0; i < opts.Replicas; i++ {
		addr, err := c.startReplica(ctx, i)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.Replicas = append(c.Replicas, addr)
	}
	if opts.NoBalancer {
		c.Balancer = c.Replicas[0]
		return c, nil
	}
	if err := c.startNginx(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Config returns the distribution configuration a replica on s uses, with
// its storage under prefix. The keys are those of distribution's s3
// driver, which ferry's (internal/regstorage/s3driver) keeps; credentials are left to
// the environment.
func Config(s S3, prefix string, readOnly bool) string {
	secure := strings.HasPrefix(s.Endpoint, "https://")
	return fmt.Sprintf(`version: 0.1
log:
  level: error
storage:
  s3:
    region: %s
    regionendpoint: %s
    bucket: %s
    rootdirectory: %s
    forcepathstyle: true
    secure: %t
    v4auth: true
    chunksize: 5242880
  delete:
    enabled: true
  redirect:
    disable: true
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: %t
validation:
  manifests:
    urls:
      allow:
        - ^https?://
http:
  addr: 127.0.0.1:0
  headers:
    X-Content-Type-Options: [nosniff]
`, s.Region, s.Endpoint, s.Bucket, prefix, secure, readOnly)
}

// Env returns the environment a ferry process using the cluster's storage
// needs: the AWS credentials and the shared http.secret.
func (c *Cluster) Env() []string {
	return append(os.Environ(),
		"AWS_ACCESS_KEY_ID="+c.opts.S3.AccessKey,
		"AWS_SECRET_ACCESS_KEY="+c.opts.S3.SecretKey,
		"FERRY_HTTP_SECRET="+c.opts.Secret,
		"OTEL_TRACES_EXPORTER=none",
	)
}

// startReplica starts replica i on a free port and returns its address,
// read from the URL ferry serve prints once it listens.
func (c *Cluster) startReplica(ctx context.Context, i int) (string, error) {
	args := c.opts.ServeArgs
	if args == nil {
		args = []string{"--config", c.Config}
	}
	cmd := exec.Command(c.opts.Ferry, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = c.Env()
	logf, err := os.Create(filepath.Join(c.opts.Dir, fmt.Sprintf("replica-%d.log", i)))
	if err != nil {
		return "", fmt.Errorf("scaleout: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", fmt.Errorf("scaleout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("scaleout: start replica %d: %w", i, err)
	}
	c.mu.Lock()
	c.procs = append(c.procs, cmd)
	c.mu.Unlock()
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		first := true
		for sc.Scan() {
			if first {
				line <- sc.Text()
				first = false
			}
		}
		if first {
			close(line)
		}
	}()
	select {
	case l, ok := <-line:
		if !ok || !strings.HasPrefix(l, "http://") {
			_ = cmd.Wait()
			b, _ := os.ReadFile(logf.Name())
			return "", fmt.Errorf("scaleout: replica %d did not start (%v): %s", i, cmd.ProcessState, b)
		}
		return strings.TrimPrefix(l, "http://"), nil
	case <-time.After(60 * time.Second):
		return "", fmt.Errorf("scaleout: replica %d did not listen within 60s", i)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// startNginx writes nginx.conf (round-robin over the replicas, bodies
// streamed both ways, Host passed on so that the Location URLs replicas
// give point back at the balancer) and starts nginx in the foreground.
func (c *Cluster) startNginx(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	dir := c.opts.Dir
	c.Balancer = fmt.Sprintf("127.0.0.1:%d", port)
	c.AccessLog = filepath.Join(dir, "access.log")
	var ups strings.Builder
	for _, r := range c.Replicas {
		fmt.Fprintf(&ups, "    server %s max_fails=1 fail_timeout=5s;\n", r)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n" // workers may then read the temp dirs the master made
	}
	conf := fmt.Sprintf(`%sworker_processes 2;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 1024; }
http {
  log_format ferry '$request_method $uri $status $upstream_addr $upstream_status';
  access_log %[2]s/access.log ferry;
  client_body_temp_path %[2]s/tmp-body;
  proxy_temp_path %[2]s/tmp-proxy;
  fastcgi_temp_path %[2]s/tmp-fastcgi;
  uwsgi_temp_path %[2]s/tmp-uwsgi;
  scgi_temp_path %[2]s/tmp-scgi;
  upstream ferry {
%[3]s    keepalive 32;
  }
  server {
    listen %[4]s;
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_buffering off;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_read_timeout 300s;
    proxy_send_timeout 300s;
    location / { proxy_pass http://ferry; }
  }
}
`, user, dir, ups.String(), c.Balancer)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return fmt.Errorf("scaleout: %w", err)
	}
	cmd := exec.Command(c.opts.Nginx, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("scaleout: start nginx: %w", err)
	}
	c.nginx = cmd
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return err
		}
		resp, err := http.Get("http://" + c.Balancer + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
	return fmt.Errorf("scaleout: nginx on %s did not answer within 30s: %s", c.Balancer, b)
}

// Kill ends replica i at once (SIGKILL), as a crash would.
func (c *Cluster) Kill(i int) error {
	c.mu.Lock()
	p := c.procs[i]
	c.mu.Unlock()
	if err := p.Process.Kill(); err != nil {
		return fmt.Errorf("scaleout: kill replica %d: %w", i, err)
	}
	_ = p.Wait()
	return nil
}

// Close stops nginx and the replicas (SIGTERM, so they delete their
// markers; SIGKILL after ten seconds).
func (c *Cluster) Close() {
	c.mu.Lock()
	procs := append([]*exec.Cmd{}, c.procs...)
	c.mu.Unlock()
	if c.nginx != nil {
		stop(c.nginx)
	}
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); stop(p) }()
	}
	wg.Wait()
}

// stop ends a process gracefully, then by force.
func stop(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("scaleout: free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// BuildFerry builds the ferry binary of the module at moduleDir into dir
// and returns its path.
func BuildFerry(ctx context.Context, moduleDir, dir string) (string, error) {
	bin := filepath.Join(dir, "ferry")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/ferry")
	cmd.Dir = moduleDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("scaleout: go build ./cmd/ferry: %w\n%s", err, out)
	}
	return bin, nil
}
