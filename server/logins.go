package server

// This file hardens htpasswd authentication: user names must not be found
// by timing, and a client guessing passwords is slowed down.
//
// distribution's htpasswd compares the password of an unknown user with a
// dummy hash of cost 5, which answers in about 2 ms where a known user's
// (cost 10 or more) takes a hundred times longer. Its access controller
// takes the dummy hash as an option: ferry gives it one of the file's own
// cost. Failed logins are counted per client by an access controller
// around distribution's; once a client has used up its allowance, its
// requests with credentials are answered 429 with Retry-After, before any
// password is checked.

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/distribution/v3/registry/auth"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"
)

const (
	// limitedHTPasswd is the access controller ferry registers around
	// distribution's htpasswd.
	limitedHTPasswd = "ferry-htpasswd"
	// loginsKey is its option holding the *loginLimiter.
	loginsKey = "ferry.logins"
	// DefaultLoginBurst failed logins are allowed at once, then one
	// every DefaultLoginEvery, per client.
	DefaultLoginBurst = 10
	DefaultLoginEvery = 6 * time.Second
	// maxTrackedClients bounds the clients remembered; those that have
	// their whole allowance back are forgotten first.
	maxTrackedClients = 1 << 14
)

// WithLoginLimit allows each client burst failed logins at once and one
// more every every after that (DefaultLoginBurst, DefaultLoginEvery unless
// set); beyond it the client's requests with credentials get 429 Too Many
// Requests with Retry-After.
func WithLoginLimit(burst int, every time.Duration) Option {
	return func(o *options) error {
		if burst < 1 || every <= 0 {
			return errors.New("server: login limit: burst and interval must be positive")
		}
		o.loginBurst, o.loginEvery = burst, every
		return nil
	}
}

var registerLimitedHTPasswd = sync.OnceValue(func() error {
	err := auth.Register(limitedHTPasswd, func(opts map[string]any) (auth.AccessController, error) {
		l, ok := opts[loginsKey].(*loginLimiter)
		if !ok {
			return nil, fmt.Errorf("server: access controller %s is ferry's own and cannot be configured", limitedHTPasswd)
		}
		inner, err := auth.GetAccessController("htpasswd", opts)
		if err != nil {
			return nil, err
		}
		return &limitedAccess{inner: inner, logins: l}, nil
	})
	if err != nil {
		return fmt.Errorf("server: register access controller: %w", err)
	}
	return nil
})

// hardenLogins replaces cfg's htpasswd authentication with the limited
// one, with a dummy hash of the file's cost, and returns its limiter; nil
// without htpasswd authentication.
func hardenLogins(cfg *configuration.Configuration, o *options) (*loginLimiter, error) {
	params, ok := cfg.Auth["htpasswd"]
	if !ok {
		return nil, nil
	}
	if err := registerLimitedHTPasswd(); err != nil {
		return nil, err
	}
	path, _ := params["path"].(string)
	dummy, err := dummyHash(path)
	if err != nil {
		return nil, err
	}
	l := &loginLimiter{
		every: o.loginEvery, burst: o.loginBurst, behindProxy: o.behindProxy,
		clients: map[string]*rate.Limiter{}, headers: cfg.HTTP.Headers,
	}
	p := configuration.Parameters{}
	for k, v := range params {
		p[k] = v
	}
	p["overrideDummyHash"] = dummy
	p[loginsKey] = l
	cfg.Auth = configuration.Auth{limitedHTPasswd: p}
	return l, nil
}

// dummyHash returns a bcrypt hash of a random password at the highest cost
// the htpasswd file uses (bcrypt.DefaultCost when it has no entry yet).
func dummyHash(path string) ([]byte, error) {
	cost := 0
	if f, err := os.Open(path); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			_, hash, ok := strings.Cut(strings.TrimSpace(s.Text()), ":")
			if c, err := bcrypt.Cost([]byte(hash)); ok && err == nil && c > cost {
				cost = c
			}
		}
		f.Close()
	}
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	h, err := bcrypt.GenerateFromPassword([]byte(strconv.FormatInt(time.Now().UnixNano(), 36)), cost)
	if err != nil {
		return nil, fmt.Errorf("server: htpasswd dummy hash: %w", err)
	}
	return h, nil
}

// limitedAccess is distribution's htpasswd access controller, counting
// failed logins.
type limitedAccess struct {
	inner  auth.AccessController
	logins *loginLimiter
}

// Authorized implements auth.AccessController.
func (a *limitedAccess) Authorized(r *http.Request, access ...auth.Access) (*auth.Grant, error) {
	g, err := a.inner.Authorized(r, access...)
	var ch auth.Challenge
	if _, _, given := r.BasicAuth(); given && errors.As(err, &ch) {
		a.logins.failed(r)
	}
	return g, err
}

// loginLimiter counts failed logins per client.
type loginLimiter struct {
	every       time.Duration
	burst       int
	behindProxy bool
	headers     http.Header

	mu      sync.Mutex
	clients map[string]*rate.Limiter
}

// client returns the address failed logins are counted for: the
// connection's, or, behind a TLS-terminating proxy, the last address the
// proxy added to X-Forwarded-For.
func (l *loginLimiter) client(r *http.Request) string {
	if l.behindProxy {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			list := strings.Split(xff[len(xff)-1], ",")
			if last := strings.TrimSpace(list[len(list)-1]); last != "" {
				return last
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limiter returns the client's limiter, creating it when create is set.
func (l *loginLimiter) limiter(key string, create bool) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.clients[key]
	if lim == nil && create {
		if len(l.clients) >= maxTrackedClients {
			l.forget()
		}
		lim = rate.NewLimiter(rate.Every(l.every), l.burst)
		l.clients[key] = lim
	}
	return lim
}

// forget drops the clients with their whole allowance back, or, when
// none has, all of them. l.mu is held.
func (l *loginLimiter) forget() {
	for k, lim := range l.clients {
		if lim.Tokens() >= float64(l.burst) {
			delete(l.clients, k)
		}
	}
	if len(l.clients) >= maxTrackedClients {
		clear(l.clients)
	}
}

// failed counts a failed login of r's client.
func (l *loginLimiter) failed(r *http.Request) {
	l.limiter(l.client(r), true).Allow()
}

// wait returns how long r's client must wait before trying credentials
// again: 0 when it may now.
func (l *loginLimiter) wait(r *http.Request) time.Duration {
	lim := l.limiter(l.client(r), false)
	if lim == nil {
		return 0
	}
	tokens := lim.Tokens()
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) * float64(l.every))
}

// wrap answers requests with credentials from a client over its limit
// with 429 and Retry-After (whole seconds, rounded up).
func (l *loginLimiter) wrap(next http.Handler) http.Handler {
	if l == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			if d := l.wait(r); d > 0 {
				for k, v := range l.headers {
					w.Header()[k] = v
				}
				secs := int(math.Ceil(d.Seconds()))
				w.Header().Set("Retry-After", strconv.Itoa(secs))
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusTooManyRequests)
				_, _ = fmt.Fprintf(w, `{"errors":[{"code":%q,"message":"too many failed logins from this client; retry in %d s"}]}`+"\n",
					errcode.ErrorCodeTooManyRequests.String(), secs)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
