package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/internal/stall"
	"github.com/ferry-dev/ferry/version"
)

type options struct {
	insecure  bool
	keychain  authn.Keychain
	auth      authn.Authenticator
	transport http.RoundTripper
	push      bool
	scopes    []string
	userAgent string
	retries   int
	stall     time.Duration
	delay     time.Duration
	clients   *Clients
}

// Option configures a Repo.
type Option func(*options) error

// WithInsecure allows plain HTTP to any registry, not only loopback ones.
func WithInsecure(insecure bool) Option {
	return func(o *options) error { o.insecure = insecure; return nil }
}

// WithKeychain resolves credentials through kc. The default is
// authn.DefaultKeychain (docker config.json and credential helpers).
func WithKeychain(kc authn.Keychain) Option {
	return func(o *options) error {
		if o.auth != nil {
			return errors.New("registry: either a keychain or an authenticator, not both")
		}
		o.keychain = kc
		return nil
	}
}

// WithAuth uses a fixed authenticator instead of a keychain.
func WithAuth(a authn.Authenticator) Option {
	return func(o *options) error {
		if o.keychain != nil {
			return errors.New("registry: either a keychain or an authenticator, not both")
		}
		o.auth = a
		return nil
	}
}

// WithTransport sets the base HTTP transport. The default is a shared
// transport tuned for parallel blob transfers.
func WithTransport(t http.RoundTripper) Option {
	return func(o *options) error { o.transport = t; return nil }
}

// WithPush asks for push access as well as pull.
func WithPush() Option {
	return func(o *options) error { o.push = true; return nil }
}

// WithMountFrom also asks for pull access to repo, so that blobs can be
// mounted from it.
func WithMountFrom(repo name.Repository) Option {
	return func(o *options) error {
		o.scopes = append(o.scopes, repo.Scope(transport.PullScope))
		return nil
	}
}

// WithClients shares clients through cs (see Clients): Repos opened with
// the same cs, the same other options and the same scopes use one client.
// The default opens a client (a ping, and a token under token
// authentication) for every Repo.
func WithClients(cs *Clients) Option {
	return func(o *options) error { o.clients = cs; return nil }
}

// WithUserAgent sets the User-Agent prefix; the default is
// version.UserAgent(), "ferry/VERSION (os/arch)".
func WithUserAgent(ua string) Option {
	return func(o *options) error { o.userAgent = ua; return nil }
}

// WithRetries sets how many times a small request (manifest, HEAD, tag
// list) is tried on 429, 5xx or a network error. The default is 4.
func WithRetries(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("registry: retries must be at least 1, got %d", n)
		}
		o.retries = n
		return nil
	}
}

// DefaultTransport is the base transport shared by every Repo unless
// WithTransport is given: keep-alive connections, enough idle connections
// per host for parallel blob transfers.
var DefaultTransport http.RoundTripper = func() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 32
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			return largeWrites{tc}, nil
		}
		return c, err
	}
	t.ResponseHeaderTimeout = 5 * time.Minute
	// Blob bodies move in large writes and reads: the 4 KiB defaults cost
	// a system call per 4 KiB on a gigabyte layer.
	t.WriteBufferSize = 64 << 10
	t.ReadBufferSize = 64 << 10
	return t
}()

// largeWrites is a TCP connection whose ReadFrom, through which net/http
// sends a request body, moves a blob in large writes: *net.TCPConn's own
// falls back to io.Copy's 32 KiB steps for a body that is neither a file
// nor a socket, a system call and a wakeup of the registry per 32 KiB.
// It applies to plain HTTP (loopback and --insecure registries): over
// TLS net/http writes through a *tls.Conn above it, whose records are at
// most 16 KiB anyway.
type largeWrites struct{ *net.TCPConn }

func (c largeWrites) ReadFrom(r io.Reader) (int64, error) { return blob.Copy(c.TCPConn, r) }

// DefaultStallTimeout is how long a registry request may go without moving
// a byte unless WithStallTimeout says otherwise.
const DefaultStallTimeout = stall.DefaultTimeout

// WithStallTimeout sets how long a request may go without moving a byte
// (waiting for the answer to a request without a body, the server not
// taking upload bytes, a download waiting for data) before it is abandoned
// with an error wrapping ErrStalled, which is retried like a dropped
// connection. The default is DefaultStallTimeout; 0 disables the check.
func WithStallTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("registry: stall timeout must not be negative, got %s", d)
		}
		o.stall = d
		return nil
	}
}

// WithRetryDelay waits d between the attempts of a request instead of the
// default exponential backoff with jitter (each wait drawn between half
// and all of 200ms, 400ms, 800ms… up to 5s). A Retry-After header asking
// for longer still takes precedence (up to 60s). d must be positive.
func WithRetryDelay(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("registry: retry delay must be positive, got %s", d)
		}
		o.delay = d
		return nil
	}
}

func makeOptions(opts []Option) (*options, error) {
	o := &options{transport: DefaultTransport, retries: 4, userAgent: version.UserAgent(), stall: DefaultStallTimeout}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	if o.keychain == nil && o.auth == nil {
		o.keychain = authn.DefaultKeychain
	}
	return o, nil
}
