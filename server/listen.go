package server

// This file decides where the registry may listen with what, and the URLs
// it can be reached at: basic auth sends passwords in every request, so it
// is refused over plain HTTP on an address other machines reach, unless
// TLS ends at a proxy in front.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/distribution/distribution/v3/configuration"
)

// ErrPlainAuth means basic authentication was asked for without TLS on an
// address other machines can reach; matched with errors.Is.
var ErrPlainAuth = errors.New("basic authentication over plain HTTP on a non-loopback address")

// WithTLSTerminatedByProxy says that TLS ends at a reverse proxy in front
// of the registry, which then listens in plain HTTP: basic authentication
// is allowed on any address, and the client address of a request (for the
// failed-login limit) is the last one in its X-Forwarded-For header. The
// default is false: that header is not trusted.
func WithTLSTerminatedByProxy(on bool) Option {
	return func(o *options) error { o.behindProxy = on; return nil }
}

// checkPlainAuth refuses htpasswd authentication without TLS on addr
// unless every address it names is a loopback one or TLS ends at a proxy.
func checkPlainAuth(ctx context.Context, cfg *configuration.Configuration, addr string, tls, behindProxy bool) error {
	if tls || behindProxy || !usesHTPasswd(cfg) {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("server: listen address %s: %w", addr, err)
	}
	if loopbackOnly(ctx, host) {
		return nil
	}
	return fmt.Errorf("server: %w (%s): passwords would cross the network in clear text; give a TLS certificate and key, listen on 127.0.0.1, or, when TLS ends at a reverse proxy in front, say so (--tls-terminated-by-proxy)", ErrPlainAuth, addr)
}

// loopbackOnly reports whether host ("" is every address) names loopback
// addresses only.
func loopbackOnly(ctx context.Context, host string) bool {
	if host == "" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return false
		}
	}
	return true
}

// reachableURLs returns the URLs a server listening at addr (as bound)
// is reached at: the address itself, or, when it is the unspecified
// address (0.0.0.0 or ::), loopback first and then each interface's
// address (IPv6 link-local ones need a zone and are left out).
func reachableURLs(scheme string, addr net.Addr) []string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return []string{scheme + "://" + addr.String()}
	}
	port := strconv.Itoa(tcp.Port)
	urls := []string{scheme + "://" + net.JoinHostPort("127.0.0.1", port)}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return urls
	}
	for _, a := range ifaddrs {
		ipnet, ok := a.(*net.IPNet)
		if !ok || ipnet.IP.IsLoopback() || ipnet.IP.IsLinkLocalUnicast() {
			continue
		}
		if tcp.IP.To4() != nil && ipnet.IP.To4() == nil {
			continue // 0.0.0.0 listens on IPv4 only
		}
		urls = append(urls, scheme+"://"+net.JoinHostPort(ipnet.IP.String(), port))
	}
	return urls
}

// usesHTPasswd reports whether cfg authenticates with an htpasswd file.
func usesHTPasswd(cfg *configuration.Configuration) bool {
	_, ok := cfg.Auth["htpasswd"]
	return ok
}
