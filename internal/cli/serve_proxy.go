package cli

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ferry-dev/ferry/server"
)

// proxyPasswordEnv names the environment variable holding the password
// for --proxy-username: a password is never a flag (it would show in
// process listings and shell history).
const proxyPasswordEnv = "FERRY_PROXY_PASSWORD"

// mirrorFlags are serve's flags that make it a pull-through mirror.
type mirrorFlags struct {
	upstreams []string
	ttl       time.Duration
	username  string
	allow     []string
	foreign   string
}

func (mf *mirrorFlags) register(f *pflag.FlagSet) {
	f.StringArrayVar(&mf.upstreams, "proxy", nil, "be a read-only pull-through mirror of this registry, URL or NAME=URL; repeat for several, named by ?ns=NAME or MIRROR/NAME/REPO (docs/mirror.md)")
	f.DurationVar(&mf.ttl, "proxy-ttl", server.DefaultProxyTTL, "how long a mirrored tag is served before it is checked upstream again (0: every time)")
	f.StringVar(&mf.username, "proxy-username", "", "user name for the one --proxy upstream, password from "+proxyPasswordEnv+" (default: the docker config and credential helpers)")
	f.StringArrayVar(&mf.allow, "foreign-allow", nil, "with --proxy: regular expression of foreign-layer URLs the mirror may fetch from loopback or private addresses")
	f.StringVar(&mf.foreign, "proxy-foreign", "keep", "with --proxy: keep (manifests as upstream) or localize (tags resolve to manifests whose foreign layers are ordinary ones, for air-gapped containerd)")
}

// options turns the flags into server options; none without --proxy.
func (mf *mirrorFlags) options(cmd *cobra.Command) ([]server.Option, error) {
	if len(mf.upstreams) == 0 {
		for _, n := range []string{"proxy-ttl", "proxy-username", "foreign-allow", "proxy-foreign"} {
			if cmd.Flags().Changed(n) {
				return nil, usageErr(fmt.Errorf("--%s needs --proxy", n))
			}
		}
		return nil, nil
	}
	var ups []server.Upstream
	for _, s := range mf.upstreams {
		u, err := server.ParseUpstream(s)
		if err != nil {
			return nil, usageErr(err)
		}
		ups = append(ups, u)
	}
	if mf.username != "" {
		if len(ups) != 1 {
			return nil, usageErr(fmt.Errorf("--proxy-username goes with one --proxy; for several upstreams log in to each with ferry login"))
		}
		ups[0].Username, ups[0].Password = mf.username, os.Getenv(proxyPasswordEnv)
		if ups[0].Password == "" {
			return nil, usageErr(fmt.Errorf("--proxy-username needs the password in %s", proxyPasswordEnv))
		}
	}
	if mf.ttl < 0 {
		return nil, usageErr(fmt.Errorf("--proxy-ttl must not be negative, got %s", mf.ttl))
	}
	if mf.foreign != "keep" && mf.foreign != "localize" {
		return nil, usageErr(fmt.Errorf("--proxy-foreign %q: want keep or localize", mf.foreign))
	}
	opts := []server.Option{server.WithProxy(ups...), server.WithProxyTTL(mf.ttl), server.WithProxyLocalize(mf.foreign == "localize")}
	if len(mf.allow) > 0 {
		opts = append(opts, server.WithProxyForeignAllow(mf.allow...))
	}
	// Checked now, so that a bad URL or pattern is bad usage (exit 2).
	if _, err := server.Configuration(opts...); err != nil {
		return nil, usageErr(err)
	}
	return opts, nil
}

// what names what serve serves, for its start line: upstream URLs carry
// no credentials (ParseUpstream's check refuses them).
func (mf *mirrorFlags) what() string {
	if len(mf.upstreams) == 0 {
		return "registry"
	}
	return fmt.Sprintf("mirror of %s", strings.Join(mf.upstreams, ", "))
}
