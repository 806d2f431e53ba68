package registry

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferry-dev/ferry/internal/stall"
	"github.com/ferry-dev/ferry/internal/wait"
)

// NewRegistry returns ggcr's name.Registry for host, marked insecure (plain
// HTTP allowed) when the host is a loopback address or insecure is set.
func NewRegistry(host string, insecure bool) (name.Registry, error) {
	var nopts []name.Option
	if insecure || isLoopback(host) {
		nopts = append(nopts, name.Insecure)
	}
	return name.NewRegistry(host, nopts...)
}

func isLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Client is an authenticated HTTP client for one registry.
type Client struct {
	reg     name.Registry
	http    *http.Client
	retries int
	backoff wait.Backoff
}

// The registry client's exponential backoff: up to 200ms before the first
// retry, doubling up to 5s (see WithRetryDelay).
const (
	backoffBase = 200 * time.Millisecond
	backoffMax  = 5 * time.Second
)

// NewClient authenticates to reg for the given scopes.
func NewClient(ctx context.Context, reg name.Registry, scopes []string, opts ...Option) (*Client, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	return newClient(ctx, reg, scopes, o)
}

func newClient(ctx context.Context, reg name.Registry, scopes []string, o *options) (*Client, error) {
	auth := o.auth
	if auth == nil {
		var err error
		if auth, err = o.keychain.Resolve(reg); err != nil {
			return nil, fmt.Errorf("credentials for %s: %w", reg, err)
		}
	}
	var base http.RoundTripper = stall.Wrap(o.transport, o.stall)
	if o.clients != nil {
		base = o.clients.pingCache().Transport(base)
	}
	base = transport.NewUserAgent(base, o.userAgent)
	rt, err := transport.NewWithContext(ctx, reg, auth, base, scopes)
	if err != nil {
		return nil, classify(fmt.Errorf("connect to %s: %w", reg, err))
	}
	return &Client{reg: reg, http: &http.Client{Transport: rt}, retries: o.retries,
		backoff: wait.Backoff{Base: backoffBase, Max: backoffMax, Fixed: o.delay}}, nil
}

// Ping checks that the credentials are accepted by the registry (GET /v2/).
func Ping(ctx context.Context, reg name.Registry, opts ...Option) error {
	c, err := NewClient(ctx, reg, nil, opts...)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, func() (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s/v2/", reg.Scheme(), reg.RegistryStr()), nil)
	}, http.StatusOK)
	if err != nil {
		return fmt.Errorf("%s: %w", reg, err)
	}
	resp.Body.Close()
	return nil
}

// do sends the request newReq builds, retrying network errors, 429 and
// 5xx with backoff (honouring Retry-After). It returns the response when
// its status is one of ok, and an error otherwise.
func (c *Client) do(ctx context.Context, newReq func() (*http.Request, error), ok ...int) (*http.Response, error) {
	var lastErr error
	for attempt := 0; attempt < c.retries; attempt++ {
		if attempt > 0 {
			if err := c.backoff.Wait(ctx, attempt, lastErr); err != nil {
				return nil, err
			}
		}
		req, err := newReq()
		if err != nil {
			return nil, err
		}
		resp, err := c.http.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			lastErr = classify(err)
			continue
		}
		if err := check(resp, ok...); err != nil {
			resp.Body.Close()
			lastErr = err
			if retryable(resp.StatusCode) {
				continue
			}
			return nil, err
		}
		return resp, nil
	}
	return nil, lastErr
}

func retryable(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500
}
