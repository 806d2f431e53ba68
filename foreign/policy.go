package foreign

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"syscall"
)

// ErrURLRefused means the URL policy refused a foreign-layer URL: its
// scheme is not http or https, or it leads to a loopback, private,
// link-local, shared (CGNAT), multicast or unspecified address that no
// allow pattern covers.
var ErrURLRefused = errors.New("URL refused by policy")

// Policy decides which foreign-layer URLs may be fetched.
//
// It is ours, not go-containerregistry's, because that one is hard-coded and
// cannot be configured: it refuses every private and loopback IP literal
// (which breaks enterprise mirrors on internal addresses) and never checks
// what a DNS name resolves to (so a name pointing at 127.0.0.1 or at a cloud
// metadata address passes). This policy
//
//   - follows only http and https URLs, even when an allow pattern matches;
//   - refuses loopback, private (RFC 1918, fc00::/7), link-local
//     (169.254.0.0/16, fe80::/10), shared (CGNAT, 100.64.0.0/10),
//     multicast, broadcast and unspecified addresses, unless an allow
//     pattern matches the URL;
//   - applies the address check to the address actually dialed (see
//     CheckAddr), so that a DNS name cannot smuggle an internal address
//     in, and to every redirect, each judged by its own URL;
//   - matches allow patterns against the URL's scheme, host, port and
//     path only, never its user part, query or fragment, so that
//     http://mirror.corp.example@127.0.0.1/ is judged as 127.0.0.1;
//   - refuses a URL with a user part (user:password@): the fetcher would
//     send it as an Authorization header. Only a pattern that itself
//     contains '@' allows one, matched against the whole URL user part
//     included (`^https://svc@mirror\.corp\.example/`).
//
// A Policy is safe for concurrent use. The zero Policy and a nil *Policy
// allow nothing beyond the defaults.
type Policy struct {
	allow     []*regexp.Regexp // matched against matchText
	allowUser []*regexp.Regexp // patterns with '@': matched against the whole URL
}

// NewPolicy compiles the allow patterns: Go regular expressions (the
// --foreign-allow flag), each matched against SCHEME://HOST[:PORT]/PATH,
// the URL without its user part, query and fragment. A pattern is not
// implicitly anchored: anchor it with ^, e.g.
// `^https://mirror\.corp\.example/`. A pattern containing '@' is for
// URLs with a user part, and is matched against the whole URL instead.
func NewPolicy(allow []string) (*Policy, error) {
	p := &Policy{}
	for _, s := range allow {
		re, err := regexp.Compile(s)
		if err != nil {
			return nil, fmt.Errorf("--foreign-allow %q is not a valid Go regular expression: %w", s, err)
		}
		if strings.Contains(s, "@") {
			p.allowUser = append(p.allowUser, re)
		} else {
			p.allow = append(p.allow, re)
		}
	}
	return p, nil
}

// Allowed reports whether an allow pattern matches u: for a URL without a
// user part, a pattern matching its scheme, host, port and path; for one
// with a user part, only a pattern containing '@' matching the whole URL.
func (p *Policy) Allowed(u *url.URL) bool {
	if p == nil || u == nil {
		return false
	}
	patterns, text := p.allow, matchText(u)
	if u.User != nil {
		patterns, text = p.allowUser, u.String()
	}
	for _, re := range patterns {
		if re.MatchString(text) {
			return true
		}
	}
	return false
}

// matchText is what allow patterns see of u: SCHEME://HOST[:PORT]/PATH.
func matchText(u *url.URL) string {
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}

// CheckURL checks what can be checked before dialing: the scheme, the
// presence of a host, and, when the host is an IP literal and no allow
// pattern matches u, its address. A DNS name passes here; its addresses
// are checked when dialed (CheckAddr).
func (p *Policy) CheckURL(u *url.URL) error {
	if u == nil {
		return fmt.Errorf("%w: no URL", ErrURLRefused)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: %s: only http and https URLs are followed, not %q", ErrURLRefused, u.Redacted(), u.Scheme)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%w: %s: no host", ErrURLRefused, u.Redacted())
	}
	if p.Allowed(u) {
		return nil
	}
	if u.User != nil {
		return fmt.Errorf("%w: %s: the URL has a user part, which would be sent as credentials; allow it explicitly with a --foreign-allow pattern containing '@' (matched against the whole URL)", ErrURLRefused, u.Redacted())
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil {
		if class := internal(ip); class != "" {
			return fmt.Errorf("%w: %s: %s is a %s address; %s", ErrURLRefused, u.Redacted(), ip, class, howToAllow)
		}
	}
	return nil
}

const howToAllow = "if it is a trusted mirror, allow it with --foreign-allow REGEX (a Go regular expression matched against SCHEME://HOST[:PORT]/PATH)"

// target is what a request's context tells the dialer: the URL being
// fetched (after redirects: each request has its own), whether an allow
// pattern covers it, and the proxy the request goes through, if any.
type target struct {
	url       string // redacted, for messages
	allowed   bool
	proxy     *url.URL
	proxyAddr string // host:port the transport dials to reach proxy
}

type targetKey struct{}

func targetFrom(ctx context.Context) *target {
	t, _ := ctx.Value(targetKey{}).(*target)
	return t
}

// WithURL returns a context carrying u, the URL a connection is being
// dialed for, so that CheckAddr can tell whether an allow pattern covers
// it. The Fetcher and its Client do this for every request, redirects
// included.
func (p *Policy) WithURL(ctx context.Context, u *url.URL) context.Context {
	return context.WithValue(ctx, targetKey{}, p.target(u))
}

func (p *Policy) target(u *url.URL) *target {
	return &target{url: u.Redacted(), allowed: p.Allowed(u)}
}

// CheckAddr checks an address about to be dialed, "ip:port" or "ip" as a
// net.Dialer Control function receives it. It refuses internal addresses
// unless ctx (see WithURL) carries a URL an allow pattern matches; a ctx
// without a URL gets no allowance.
func (p *Policy) CheckAddr(ctx context.Context, addr string) error {
	t := targetFrom(ctx)
	if t != nil && t.allowed {
		return nil
	}
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: dialed address %q is not an IP address", ErrURLRefused, addr)
	}
	if class := internal(ip); class != "" {
		if t == nil {
			return fmt.Errorf("%w: %s is a %s address; %s", ErrURLRefused, ip, class, howToAllow)
		}
		return fmt.Errorf("%w: %s: its host resolved to %s, a %s address; %s", ErrURLRefused, t.url, ip, class, howToAllow)
	}
	return nil
}

// control is the net.Dialer ControlContext hook: it sees the address
// actually dialed, after name resolution.
func (p *Policy) control(ctx context.Context, _, address string, _ syscall.RawConn) error {
	return p.CheckAddr(ctx, address)
}

var (
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
	cgnat       = netip.MustParsePrefix("100.64.0.0/10")
	broadcast   = netip.MustParseAddr("255.255.255.255")
)

// internal names the class of an address that must not be dialed without
// an allow pattern, or returns "".
func internal(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case ip.IsLoopback():
		return "loopback"
	case ip.IsUnspecified(), thisNetwork.Contains(ip):
		return "unspecified"
	case ip.IsPrivate():
		return "private"
	case ip.IsMulticast(), ip == broadcast:
		return "multicast"
	case ip.IsLinkLocalUnicast():
		return "link-local"
	case cgnat.Contains(ip):
		return "shared (CGNAT)"
	}
	return ""
}
