package cli

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/server"
)

func newServeCmd(g *globals) *cobra.Command {
	var (
		root, addr, configFile, htpasswd, tlsCert, tlsKey string
		allow, deny                                       []string
		deleteOK, behindProxy, ui                         bool
		logLevel, logFormat                               string
		s3                                                server.S3
		mirror                                            mirrorFlags
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run an OCI registry (distribution/distribution embedded) on a docker/registry storage root",
		Long: `Run an OCI registry: distribution/distribution v3 embedded as a library, storing
images under --root in docker/registry's on-disk layout (so an existing
registry root can be served, and the other way round).

With --s3-bucket (or a --config naming storage.s3) it stores in an S3 bucket
through ferry's S3 storage driver instead, and several ferry serve
processes on one bucket behind a load balancer act as one registry.
Credentials come from the AWS environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance role), never from flags.
Replicas must share http.secret, which signs upload state: set
FERRY_HTTP_SECRET (or REGISTRY_HTTP_SECRET) to the same random string on
each, or http.secret in --config. At start each replica writes a marker
through the storage, reads it back, and refuses to run beside a replica
whose secret differs.

With --proxy it is a read-only pull-through mirror of one or more
registries that also caches foreign layers, fetched from their urls
(docs/mirror.md).

It also answers / with a read-only web view (--ui=false turns it off):
repositories, tags, indexes with their platforms and os.version, images
with their config, layers (foreign ones flagged), history and referrers,
each page also JSON with Accept: application/json.

By default it listens on loopback only, and accepts manifests whose foreign
layers point at https URLs, so Windows images can be mirrored with
--foreign keep. With --config, the file's values (http.addr, http.tls,
log.level, log.formatter, ...) count unless the flag is given.

--htpasswd without TLS is refused on an address other machines reach
(passwords would cross the network in clear text) unless
--tls-terminated-by-proxy says a reverse proxy in front ends TLS. Failed
logins are limited per client (429 with Retry-After).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (tlsCert == "") != (tlsKey == "") {
				return usageErr(fmt.Errorf("--tls-cert and --tls-key go together"))
			}
			onS3 := s3.Bucket != "" || cmd.Flags().Changed("s3-endpoint") || cmd.Flags().Changed("s3-region")
			if onS3 && (configFile != "" || cmd.Flags().Changed("root")) {
				return usageErr(fmt.Errorf("--s3-* flags describe the storage, and so do --config and --root: give one (put an S3 storage section in the --config file)"))
			}
			if onS3 && s3.Bucket == "" {
				return usageErr(fmt.Errorf("--s3-endpoint and --s3-region need --s3-bucket"))
			}
			opts := []server.Option{server.WithDelete(deleteOK), server.WithSecret(envSecret()), server.WithTLSTerminatedByProxy(behindProxy), server.WithUI(ui)}
			// A configuration file's values count unless a flag is given.
			fromFlag := func(name, v string) string {
				if configFile != "" && !cmd.Flags().Changed(name) {
					return ""
				}
				return v
			}
			opts = append(opts, server.WithLog(g.stderr, fromFlag("log-level", logLevel)), server.WithLogFormat(fromFlag("log-format", logFormat)))
			where := "root " + root
			switch {
			case onS3:
				if s3.Region == "" {
					s3.Region = firstEnv("AWS_REGION", "AWS_DEFAULT_REGION")
				}
				opts = append(opts, server.WithS3(s3))
				where = "s3 bucket " + s3.Bucket
				if s3.Endpoint != "" {
					where += " at " + s3.Endpoint
				}
			case configFile != "":
				opts = append(opts, server.WithConfigFile(configFile))
				where = "config " + configFile
				if cmd.Flags().Changed("root") {
					opts = append(opts, server.WithRoot(root))
					where = "root " + root
				}
			default:
				opts = append(opts, server.WithRoot(root))
			}
			if allow != nil || deny != nil {
				opts = append(opts, server.WithForeignURLs(allow, deny))
			}
			if htpasswd != "" {
				opts = append(opts, server.WithHTPasswd(htpasswd))
			}
			mopts, err := mirror.options(cmd)
			if err != nil {
				return err
			}
			opts = append(opts, mopts...)
			s, err := server.StartTLS(cmd.Context(), fromFlag("addr", addr), tlsCert, tlsKey, opts...)
			if err != nil {
				if errors.Is(err, server.ErrPlainAuth) {
					return usageErr(err)
				}
				return err
			}
			fmt.Fprintf(g.stderr, "ferry: serving %s on %s (%s)\n", mirror.what(), strings.Join(s.URLs, ", "), where)
			if len(s.URLs) == 1 && s.URLs[0] != "http://"+s.Addr && s.URLs[0] != "https://"+s.Addr {
				fmt.Fprintf(g.stderr, "ferry: listening on every address (%s): from other machines use http://HOST:%s, HOST being this machine's name or address\n", s.Addr, port(s.Addr))
			}
			fmt.Fprintln(g.stdout, s.URL)
			// The server closes itself when the command's context ends
			// (nil) or serving fails (that error is the command's).
			return s.Wait()
		},
	}
	f := cmd.Flags()
	f.StringVar(&root, "root", "./ferry-data", "storage root (docker/registry layout)")
	f.StringVar(&addr, "addr", server.DefaultAddr, "address to listen on (0.0.0.0:PORT for every address)")
	f.StringVar(&configFile, "config", "", "a full distribution configuration file (storage drivers, token auth, proxy cache, ...)")
	f.StringVar(&htpasswd, "htpasswd", "", "require basic auth checked against this htpasswd file (bcrypt)")
	f.StringVar(&tlsCert, "tls-cert", "", "TLS certificate file")
	f.StringVar(&tlsKey, "tls-key", "", "TLS key file")
	f.StringArrayVar(&allow, "foreign-urls-allow", nil, "regular expression foreign-layer URLs in pushed manifests must match (default ^https://); given, it replaces --config's validation.manifests.urls.allow")
	f.StringArrayVar(&deny, "foreign-urls-deny", nil, "regular expression foreign-layer URLs in pushed manifests must not match; given, it replaces --config's validation.manifests.urls.deny")
	f.BoolVar(&deleteOK, "delete", false, "enable deleting manifests and blobs")
	f.BoolVar(&ui, "ui", true, "serve a read-only web view of the registry at / (same login as the API with --htpasswd)")
	f.StringVar(&logLevel, "log-level", "error", "registry log level (error, warn, info, debug)")
	f.StringVar(&logFormat, "log-format", server.LogText, "registry log format: text or json")
	f.BoolVar(&behindProxy, "tls-terminated-by-proxy", false, "TLS ends at a reverse proxy in front: allow --htpasswd on plain HTTP, trust X-Forwarded-For for the failed-login limit")
	f.StringVar(&s3.Endpoint, "s3-endpoint", "", "S3 endpoint URL for a server other than AWS (radosgw, MinIO): http://HOST:PORT or https://...")
	f.StringVar(&s3.Bucket, "s3-bucket", "", "store in this S3 bucket (it must exist); credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
	f.StringVar(&s3.Region, "s3-region", "", "the bucket's region (default AWS_REGION, or us-east-1 with --s3-endpoint)")
	mirror.register(f)
	return cmd
}

// port returns the port of a host:port address.
func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// envSecret returns the http.secret the environment gives:
// FERRY_HTTP_SECRET, else REGISTRY_HTTP_SECRET (distribution's name).
func envSecret() string { return firstEnv("FERRY_HTTP_SECRET", "REGISTRY_HTTP_SECRET") }

// firstEnv returns the first of the named environment variables that is
// set and not empty.
func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}
