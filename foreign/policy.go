package foreign

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"syscall"
)

// ErrURLRefused means the URL policy refused a foreign-layer URL.
var ErrURLRefused = errors.New("URL refused by policy")

// Policy decides which foreign-layer URLs may be fetched.
//
// It is ours because go-containerregistry's hard-codes one that cannot be
// configured: it refuses private and loopback IP literals (which breaks
// enterprise mirrors) and never checks what a DNS name resolves to. Here,
// only http and https are allowed; loopback, private, link-local, CGNAT,
// multicast and unspecified addresses are refused unless an allow pattern
// matches the URL; and the address check runs on the address actually
// dialed, so a DNS name cannot smuggle an internal address, and again on
// every redirect.
type Policy struct {
	allow []*regexp.Regexp
}

// NewPolicy compiles the allow patterns (Go regular expressions matched
// against the whole URL text).
func NewPolicy(allow []string) (*Policy, error) {
	p := &Policy{}
	for _, s := range allow {
		re, err := regexp.Compile(s)
		if err != nil {
			return nil, fmt.Errorf("--foreign-allow %q: %w", s, err)
		}
		p.allow = append(p.allow, re)
	}
	return p, nil
}

// Allowed reports whether an allow pattern matches u.
func (p *Policy) Allowed(u string) bool {
	for _, re := range p.allow {
		if re.MatchString(u) {
			return true
		}
	}
	return false
}

// CheckURL checks the scheme, and an IP-literal host's address.
func (p *Policy) CheckURL(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: %s: only http and https URLs are followed, not %q", ErrURLRefused, u.Redacted(), u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("%w: %s: no host", ErrURLRefused, u.Redacted())
	}
	if p.Allowed(u.String()) {
		return nil
	}
	if ip, err := netip.ParseAddr(trimBrackets(u.Hostname())); err == nil {
		if why := internal(ip); why != "" {
			return refusal(u.Redacted(), ip.String(), why)
		}
	}
	return nil
}

func trimBrackets(s string) string {
	if len(s) > 1 && s[0] == '[' && s[len(s)-1] == ']' {
		return s[1 : len(s)-1]
	}
	return s
}

func refusal(u, addr, why string) error {
	return fmt.Errorf("%w: %s resolves to %s, a %s address; allow it with --foreign-allow if it is a trusted mirror", ErrURLRefused, u, addr, why)
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// internal names the class of an address that must not be dialed without
// an allow pattern, or returns "".
func internal(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case ip.IsLoopback():
		return "loopback"
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsPrivate():
		return "private"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "link-local"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return "multicast"
	case cgnat.Contains(ip):
		return "shared (CGNAT)"
	}
	return ""
}

type ctxKey struct{}

// dialState travels in a request's context to the dialer: the URL being
// fetched and whether the allow list covers it.
type dialState struct {
	url     string
	allowed bool
}

// control is a net.Dialer Control function checking the address about to
// be dialed.
func (p *Policy) control(ctx context.Context, network, address string, _ syscall.RawConn) error {
	st, _ := ctx.Value(ctxKey{}).(*dialState)
	if st != nil && st.allowed {
		return nil
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: cannot parse dialed address %q", ErrURLRefused, address)
	}
	if why := internal(ip); why != "" {
		u := "a foreign-layer URL"
		if st != nil {
			u = st.url
		}
		return refusal(u, ip.String(), why)
	}
	return nil
}
