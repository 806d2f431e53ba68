package server

// This file is S3 storage as ferry serve --s3-* gives it: an S3 bucket
// through ferry's S3 storage driver (internal/regstorage/s3driver, on
// aws-sdk-go-v2). Replicas on one bucket behind a load balancer keep
// nothing on their disks: the referrers API is derived from distribution's
// storage (referrers.go), and what replicas must agree on, http.secret, is
// required (secret.go) and checked through the storage at start
// (replicas.go).

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/distribution/distribution/v3/configuration"

	"github.com/ferry-dev/ferry/internal/redact"
	// ferry's S3 storage driver, registered as "s3", for --s3-* and
	// configurations naming storage.s3. It replaces distribution's s3-aws
	// driver, whose aws-sdk-go v1 is end-of-support and cost every ferry
	// command ~8 MB of memory at start.
	_ "github.com/ferry-dev/ferry/internal/regstorage/s3driver"
)

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
				return fmt.Errorf("server: S3 endpoint %q: give a URL such as http://127.0.0.1:7480 or https://s3.example.com", redact.URL(s.Endpoint))
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
		// Uploads are purged by ferry (uploads.go).
	}
}
