package server

// This file makes the embedded registry one of several replicas on shared
// storage (an S3 bucket through ferry's S3 storage driver,
// internal/regstorage/s3driver, on aws-sdk-go-v2) behind a load balancer. Nothing is
// kept on a replica's disk: the referrers API is derived from
// distribution's storage (referrers.go), and what replicas must agree on,
// http.secret, is checked through the storage at start
// (internal/regstorage/replicas).

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/distribution/distribution/v3/configuration"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"

	"github.com/ferry-dev/ferry/internal/regstorage/replicas"

	// ferry's S3 storage driver, registered as "s3", for --s3-* and
	// configurations naming storage.s3. It replaces distribution's s3-aws
	// driver, whose aws-sdk-go v1 is end-of-support and cost every ferry
	// command ~8 MB of memory at start.
	_ "github.com/ferry-dev/ferry/internal/regstorage/s3driver"
)

// ErrNoSecret means shared storage was configured without http.secret.
var ErrNoSecret = errors.New("http.secret is required with shared storage")

// S3 is the common case of S3 storage, as `ferry serve --s3-*` gives it.
// Credentials are not part of it: ferry's S3 driver takes them from the
// usual places (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a shared
// credentials file, a container's or an instance's role).
type S3 struct {
	// Endpoint is the S3 endpoint's URL, e.g. http://127.0.0.1:7480 for
	// Ceph's radosgw or MinIO; empty for AWS itself. http turns TLS off,
	// and buckets are addressed by path rather than by host name.
	Endpoint string
	// Bucket is the bucket, which must exist: distribution does not
	// create it.
	Bucket string
	// Region is the bucket's region. Required for AWS; with an endpoint it
	// defaults to us-east-1, which is what most other S3 servers expect.
	Region string
}

// WithS3 stores images in an S3 bucket through ferry's S3 storage driver
// (internal/regstorage/s3driver), with redirects to the bucket disabled (clients need
// reach only the registry) and distribution's default purging of
// abandoned uploads. http.secret must then be given (WithSecret, or in a
// configuration file) and be the same on every replica.
func WithS3(s S3) Option {
	return func(o *options) error {
		if s.Bucket == "" {
			return errors.New("server: S3 storage needs a bucket")
		}
		if s.Endpoint != "" {
			u, err := url.Parse(s.Endpoint)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("server: S3 endpoint %q: give a URL such as http://127.0.0.1:7480 or https://s3.example.com", s.Endpoint)
			}
			if s.Region == "" {
				s.Region = "us-east-1"
			}
		}
		if s.Region == "" {
			return errors.New("server: S3 storage on AWS needs a region (--s3-region or AWS_REGION)")
		}
		o.s3 = &s
		o.root, o.inMemory = "", false
		return nil
	}
}

// storage returns the configuration's storage section for s.
func (s *S3) storage() configuration.Storage {
	// v4auth and, without an endpoint, secure are left to the driver's
	// defaults (true). With an endpoint its scheme decides; secure only
	// records it.
	p := configuration.Parameters{"bucket": s.Bucket, "region": s.Region}
	if s.Endpoint != "" {
		u, _ := url.Parse(s.Endpoint) // checked in WithS3
		p["regionendpoint"] = s.Endpoint
		p["forcepathstyle"] = true
		p["secure"] = u.Scheme == "https"
	}
	return configuration.Storage{
		"s3":       p,
		"redirect": configuration.Parameters{"disable": true},
		"maintenance": configuration.Parameters{
			"uploadpurging": map[any]any{"enabled": true, "age": "168h", "interval": "24h", "dryrun": false},
		},
	}
}

// sharedStorage reports whether cfg stores through a driver several
// registry processes may share: any but the local filesystem (which
// internal/regstorage/rootlock keeps to one process) and memory.
func sharedStorage(cfg *configuration.Configuration) bool {
	switch cfg.Storage.Type() {
	case "filesystem", "inmemory", "":
		return false
	}
	return true
}

// checkSecret refuses shared storage without http.secret. A pull-through
// cache takes no uploads, and distribution ignores its secret.
func checkSecret(cfg *configuration.Configuration, secretGiven bool) error {
	if !sharedStorage(cfg) || cfg.Proxy.RemoteURL != "" || secretGiven {
		return nil
	}
	return fmt.Errorf("server: %w (%s storage): replicas behind one address must share it, or an upload begun on one fails on another; set FERRY_HTTP_SECRET (or REGISTRY_HTTP_SECRET) in the environment, or http.secret in --config, to the same random string on every replica", ErrNoSecret, cfg.Storage.Type())
}

// readOnly reports whether cfg runs distribution's read-only mode
// (storage.maintenance.readonly.enabled).
func readOnly(cfg *configuration.Configuration) bool {
	m, ok := cfg.Storage["maintenance"]
	if !ok {
		return false
	}
	ro, ok := m["readonly"].(map[any]any)
	if !ok {
		return false
	}
	on, _ := ro["enabled"].(bool)
	return on
}

// announce runs the replica self-test on shared storage: it writes this
// replica's marker through the storage driver distribution uses, reads it
// back, and fails when a running replica has another http.secret. It
// returns nil for storage no other process can share.
func announce(ctx context.Context, cfg *configuration.Configuration, sink *namespaceSink) (*replicas.Presence, error) {
	if !sharedStorage(cfg) || cfg.Proxy.RemoteURL != "" {
		return nil, nil
	}
	if sink.driver == nil {
		return nil, errors.New("server: distribution did not hand over its storage driver")
	}
	p, err := replicas.Announce(ctx, sink.driver, cfg.HTTP.Secret, readOnly(cfg))
	if err != nil {
		return nil, fmt.Errorf("server: startup self-test on %s storage: %w", cfg.Storage.Type(), err)
	}
	return p, nil
}

// ConfigStorage reads the storage section of a distribution configuration
// file. For filesystem storage it returns the root directory, to be opened
// as a local root (with its lock); for any other driver it returns that
// driver, built by distribution's factory exactly as a registry with this
// configuration builds it, and a description for messages
// ("s3 bucket registry").
func ConfigStorage(ctx context.Context, path string) (root string, d storagedriver.StorageDriver, desc string, err error) {
	cfg, err := parseConfigFile(path)
	if err != nil {
		return "", nil, "", err
	}
	params := cfg.Storage.Parameters()
	switch t := cfg.Storage.Type(); t {
	case "filesystem":
		root, _ = params["rootdirectory"].(string)
		if root == "" {
			root = defaultFilesystemRoot
		}
		return root, nil, "", nil
	case "inmemory", "":
		return "", nil, "", fmt.Errorf("server: config file %s: %q storage holds nothing outside a running registry", path, t)
	default:
		d, err = factory.Create(ctx, t, params)
		if err != nil {
			// ferry's S3 driver names itself ("s3 storage: ..."), as it
			// must where distribution reports its error bare; others may
			// not.
			if !strings.HasPrefix(err.Error(), t+" storage:") {
				err = fmt.Errorf("%s storage: %w", t, err)
			}
			return "", nil, "", fmt.Errorf("server: config file %s: %w", path, err)
		}
		desc = t + " storage"
		if b, ok := params["bucket"]; ok {
			desc = fmt.Sprintf("%s bucket %v", t, b)
		}
		if p, ok := params["rootdirectory"].(string); ok && p != "" {
			desc += " under " + p
		}
		return "", d, desc, nil
	}
}

// parseConfigFile reads a distribution configuration file, with
// distribution's REGISTRY_* environment overrides applied.
func parseConfigFile(path string) (*configuration.Configuration, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("server: config file: %w", err)
	}
	defer f.Close()
	cfg, err := configuration.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("server: config file %s: %w", path, err)
	}
	return cfg, nil
}
