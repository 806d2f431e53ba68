package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/server"
)

func newServeCmd(g *globals) *cobra.Command {
	var (
		root, addr, configFile, htpasswd, tlsCert, tlsKey string
		allow, deny                                       []string
		deleteOK                                          bool
		logLevel                                          string
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run an OCI registry (distribution/distribution embedded) on a docker/registry storage root",
		Long: `Run an OCI registry: distribution/distribution v3 embedded as a library, storing
images under --root in docker/registry's on-disk layout (so an existing
registry root can be served, and the other way round).

By default it listens on loopback only, and accepts manifests whose foreign
layers point at https URLs, so Windows images can be mirrored with
--foreign keep.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (tlsCert == "") != (tlsKey == "") {
				return usageErr(fmt.Errorf("--tls-cert and --tls-key go together"))
			}
			opts := []server.Option{server.WithDelete(deleteOK), server.WithLog(g.stderr, logLevel)}
			if configFile != "" {
				opts = append(opts, server.WithConfigFile(configFile))
			}
			if configFile == "" || cmd.Flags().Changed("root") {
				opts = append(opts, server.WithRoot(root))
			}
			if allow != nil || deny != nil {
				opts = append(opts, server.WithForeignURLs(allow, deny))
			}
			if htpasswd != "" {
				opts = append(opts, server.WithHTPasswd(htpasswd))
			}
			s, err := server.StartTLS(cmd.Context(), addr, tlsCert, tlsKey, opts...)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "ferry: serving %s on %s (root %s)\n", "registry", s.URL, root)
			fmt.Fprintln(g.stdout, s.URL)
			<-cmd.Context().Done()
			_ = s.Close()
			return s.Wait()
		},
	}
	f := cmd.Flags()
	f.StringVar(&root, "root", "./ferry-data", "storage root (docker/registry layout)")
	f.StringVar(&addr, "addr", "127.0.0.1:5000", "address to listen on")
	f.StringVar(&configFile, "config", "", "a full distribution configuration file (storage drivers, token auth, proxy cache, ...)")
	f.StringVar(&htpasswd, "htpasswd", "", "require basic auth checked against this htpasswd file (bcrypt)")
	f.StringVar(&tlsCert, "tls-cert", "", "TLS certificate file")
	f.StringVar(&tlsKey, "tls-key", "", "TLS key file")
	f.StringArrayVar(&allow, "foreign-urls-allow", nil, "regular expression foreign-layer URLs in pushed manifests must match (default ^https://)")
	f.StringArrayVar(&deny, "foreign-urls-deny", nil, "regular expression foreign-layer URLs in pushed manifests must not match")
	f.BoolVar(&deleteOK, "delete", false, "enable deleting manifests and blobs")
	f.StringVar(&logLevel, "log-level", "error", "registry log level (error, warn, info, debug)")
	return cmd
}
