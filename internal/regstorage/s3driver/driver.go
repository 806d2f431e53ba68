// Package s3driver is ferry's own distribution storage driver for S3,
// registered with distribution's driver factory as "s3", so `ferry serve
// --s3-*` and configurations naming storage.s3 use it.
//
// Why ferry has its own driver: distribution's s3-aws driver is built on
// aws-sdk-go v1, which is end-of-support (since July 2025), and whose
// package initialisation alone (endpoint tables, service models) added
// about 7.7 MB of resident memory and 20 ms of start-up to every ferry
// command, S3 or not: `ferry --help` peaked at 28.9 MB RSS with it, 21.2 MB
// without. ferry's target is 32 MiB peak RSS while copying a 1 GiB layer,
// which left under 1 MiB to spare. This driver is built on aws-sdk-go-v2's
// S3 client: with it `ferry --help` peaks at 24.7 MB and takes 49 ms
// (29.0 MB and 65 ms with the s3-aws driver, 21.3 MB and 45 ms with no S3
// driver, on the same tree; linux/amd64, medians of 7 and means of 60
// runs).
//
// It keeps the s3-aws driver's parameters (see FromParameters) and its
// object keys (rootdirectory, then the path), so a bucket written by one is
// read by the other, and it resumes the s3-aws driver's multipart uploads.
package s3driver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/base"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"

	"github.com/ferry-dev/ferry/internal/redact"
)

// DriverName is the name the driver is registered under with
// distribution's factory, and the storage type of a configuration that
// uses it.
const DriverName = "s3"

const (
	// minChunkSize is S3's smallest part of a multipart upload but the
	// last.
	minChunkSize = 5 << 20
	// maxChunkSize is S3's largest part, and largest single copy.
	maxChunkSize = 5 << 30
	// defaultChunkSize is the part size of uploads, and so the memory an
	// upload in progress holds.
	defaultChunkSize = 10 << 20

	defaultMultipartCopyChunkSize      = 32 << 20
	defaultMultipartCopyMaxConcurrency = 100
	defaultMultipartCopyThresholdSize  = 32 << 20

	// listMax is the most keys one list or delete request handles.
	listMax = 1000

	// noStorageClass leaves the storage class to the bucket, for S3
	// servers that refuse the header.
	noStorageClass = "NONE"
)

// storageClasses are the storageclass values accepted: S3's classes that
// can be read back at once, and noStorageClass.
var storageClasses = []string{
	noStorageClass,
	string(types.StorageClassStandard),
	string(types.StorageClassReducedRedundancy),
	string(types.StorageClassStandardIa),
	string(types.StorageClassOnezoneIa),
	string(types.StorageClassIntelligentTiering),
	string(types.StorageClassOutposts),
	string(types.StorageClassGlacierIr),
	string(types.StorageClassExpressOnezone),
}

// objectACLs are the objectacl values accepted: S3's canned ACLs.
var objectACLs = []string{
	string(types.ObjectCannedACLPrivate),
	string(types.ObjectCannedACLPublicRead),
	string(types.ObjectCannedACLPublicReadWrite),
	string(types.ObjectCannedACLAuthenticatedRead),
	string(types.ObjectCannedACLAwsExecRead),
	string(types.ObjectCannedACLBucketOwnerRead),
	string(types.ObjectCannedACLBucketOwnerFullControl),
}

// knownParameters are the parameters FromParameters reads; any other is
// refused.
var knownParameters = []string{
	"accelerate", "accesskey", "bucket", "chunksize", "encrypt", "forcepathstyle",
	"keyid", "loglevel", "multipartcopychunksize", "multipartcopymaxconcurrency",
	"multipartcopythresholdsize", "objectacl", "redirectendpoint", "region",
	"regionendpoint", "rootdirectory", "secretkey", "secure", "sessiontoken",
	"skipverify", "storageclass", "usedualstack", "usefipsendpoint", "useragent",
	"v4auth",
}

func init() {
	factory.Register(DriverName, driverFactory{})
}

// driverFactory makes drivers for distribution's factory.
type driverFactory struct{}

// Create implements factory.StorageDriverFactory.
func (driverFactory) Create(ctx context.Context, parameters map[string]any) (storagedriver.StorageDriver, error) {
	return FromParameters(ctx, parameters)
}

// Driver is a storagedriver.StorageDriver on an S3 bucket. Its methods
// check paths and name the driver in errors (distribution's base.Base)
// around the S3 operations.
type Driver struct {
	base.Base
}

// params are a driver's parameters, checked.
type params struct {
	bucket, region, endpoint string
	forcePathStyle           bool
	accessKey, secretKey     string
	sessionToken             string
	secure, skipVerify       bool
	accelerate, dualStack    bool
	fips                     bool
	chunkSize                int64
	rootDirectory            string
	storageClass             string
	encrypt                  bool
	keyID                    string
	userAgent                string
	objectACL                string
	redirectEndpoint         *url.URL
	copyChunkSize            int64
	copyMaxConcurrency       int64
	copyThresholdSize        int64
}

// FromParameters makes a driver from a distribution configuration's
// storage.s3 parameters, which are those of distribution's s3-aws driver:
//
//   - bucket (required); region (required without regionendpoint, else
//     us-east-1 by default); regionendpoint, the URL of an S3 server other
//     than AWS (without a scheme, secure chooses https or http);
//     forcepathstyle; secure (default true); skipverify; accelerate,
//     usedualstack, usefipsendpoint (AWS endpoints)
//   - accesskey, secretkey, sessiontoken; without them, credentials come
//     from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
//     AWS_SESSION_TOKEN), the shared credentials file (AWS_PROFILE,
//     AWS_SHARED_CREDENTIALS_FILE), a container's or an EC2 instance's role
//   - v4auth: only true (the default); AWS signature version 2 is not
//     supported
//   - chunksize: the part size of uploads, 5 MiB to 5 GiB (default 10 MiB)
//   - rootdirectory: a key prefix for everything stored
//   - storageclass (default STANDARD; NONE sends none), encrypt, keyid (a
//     KMS key), objectacl (default private), useragent
//   - multipartcopychunksize, multipartcopymaxconcurrency,
//     multipartcopythresholdsize: how Move copies objects larger than the
//     threshold (default 32 MiB) in parts
//   - redirectendpoint: the scheme and host redirect URLs point at
//   - loglevel: accepted and ignored
//
// Unknown parameters are an error naming them.
func FromParameters(ctx context.Context, parameters map[string]any) (*Driver, error) {
	p, err := parseParameters(parameters)
	if err != nil {
		return nil, fmt.Errorf("s3 storage: %w", err)
	}
	d, err := newDriver(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("s3 storage: bucket %s: %w", p.bucket, err)
	}
	return &Driver{Base: base.Base{StorageDriver: d}}, nil
}

// parseParameters checks parameters and fills in defaults.
func parseParameters(parameters map[string]any) (*params, error) {
	var unknown []string
	for k := range parameters {
		if !slices.Contains(knownParameters, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, fmt.Errorf("unknown parameter(s) %s (known: %s)", strings.Join(unknown, ", "), strings.Join(knownParameters, ", "))
	}
	pr := parser{m: parameters}
	p := &params{
		bucket:        pr.str("bucket"),
		region:        pr.str("region"),
		endpoint:      pr.str("regionendpoint"),
		accessKey:     pr.str("accesskey"),
		secretKey:     pr.str("secretkey"),
		sessionToken:  pr.str("sessiontoken"),
		rootDirectory: pr.str("rootdirectory"),
		keyID:         pr.str("keyid"),
		userAgent:     pr.str("useragent"),
	}
	p.forcePathStyle = pr.boolean("forcepathstyle", false)
	p.secure = pr.boolean("secure", true)
	p.skipVerify = pr.boolean("skipverify", false)
	p.encrypt = pr.boolean("encrypt", false)
	p.accelerate = pr.boolean("accelerate", false)
	p.dualStack = pr.boolean("usedualstack", false)
	p.fips = pr.boolean("usefipsendpoint", false)
	v4 := pr.boolean("v4auth", true)
	p.chunkSize = pr.integer("chunksize", defaultChunkSize, minChunkSize, maxChunkSize)
	p.copyChunkSize = pr.integer("multipartcopychunksize", defaultMultipartCopyChunkSize, minChunkSize, maxChunkSize)
	p.copyMaxConcurrency = pr.integer("multipartcopymaxconcurrency", defaultMultipartCopyMaxConcurrency, 1, 1<<20)
	p.copyThresholdSize = pr.integer("multipartcopythresholdsize", defaultMultipartCopyThresholdSize, 0, maxChunkSize)
	p.storageClass = strings.ToUpper(pr.strDefault("storageclass", string(types.StorageClassStandard)))
	p.objectACL = pr.strDefault("objectacl", string(types.ObjectCannedACLPrivate))
	redirect := pr.str("redirectendpoint")
	if pr.err != nil {
		return nil, pr.err
	}

	switch {
	case p.bucket == "":
		return nil, errors.New("no bucket parameter given")
	case !v4:
		return nil, errors.New("v4auth: false (AWS signature version 2) is not supported; remove it or set it to true")
	case p.endpoint == "" && p.region == "":
		return nil, errors.New("no region parameter given (needed without regionendpoint)")
	case !slices.Contains(storageClasses, p.storageClass):
		return nil, fmt.Errorf("storageclass %q: must be one of %s", p.storageClass, strings.Join(storageClasses, ", "))
	case !slices.Contains(objectACLs, p.objectACL):
		return nil, fmt.Errorf("objectacl %q: must be one of %s", p.objectACL, strings.Join(objectACLs, ", "))
	case (p.accessKey == "") != (p.secretKey == ""):
		return nil, errors.New("accesskey and secretkey go together: give both, or neither to use the environment's credentials")
	}
	if p.region == "" {
		p.region = "us-east-1"
	}
	if p.endpoint != "" {
		if !strings.Contains(p.endpoint, "://") {
			scheme := "https://"
			if !p.secure {
				scheme = "http://"
			}
			p.endpoint = scheme + p.endpoint
		}
		u, err := url.Parse(p.endpoint)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("regionendpoint %q: give a URL such as https://s3.example.com or http://127.0.0.1:7480", redact.URL(p.endpoint))
		}
	}
	if redirect != "" {
		u, err := url.Parse(redirect)
		switch {
		case err != nil || u.Host == "" || u.Scheme == "":
			return nil, fmt.Errorf("redirectendpoint %q: give a scheme and host, such as https://cdn.example.com", redact.URL(redirect))
		case u.Path != "" && u.Path != "/":
			return nil, fmt.Errorf("redirectendpoint %q: a path is not supported", redact.URL(redirect))
		case u.RawQuery != "":
			return nil, fmt.Errorf("redirectendpoint %q: query parameters are not supported", redact.URL(redirect))
		}
		p.redirectEndpoint = u
	}
	return p, nil
}

// parser reads typed parameters, keeping the first error.
type parser struct {
	m   map[string]any
	err error
}

// str returns parameter name as a string, or "".
func (p *parser) str(name string) string {
	return p.strDefault(name, "")
}

// strDefault returns parameter name as a string, or def when unset.
func (p *parser) strDefault(name, def string) string {
	v, ok := p.m[name]
	if !ok || v == nil {
		return def
	}
	return fmt.Sprint(v)
}

// boolean returns parameter name, a bool or a string strconv.ParseBool
// takes, or def when unset.
func (p *parser) boolean(name string, def bool) bool {
	switch v := p.m[name].(type) {
	case nil:
		return def
	case bool:
		return v
	case string:
		b, err := strconv.ParseBool(v)
		if err == nil {
			return b
		}
	}
	p.fail(fmt.Errorf("%s %v: must be true or false", name, p.m[name]))
	return def
}

// integer returns parameter name, an integer or a string of one, or def
// when unset, and checks it is in [lo, hi].
func (p *parser) integer(name string, def, lo, hi int64) int64 {
	v := def
	if raw, ok := p.m[name]; ok && raw != nil {
		n, err := strconv.ParseInt(strings.TrimSpace(fmt.Sprint(raw)), 10, 64)
		if err != nil {
			p.fail(fmt.Errorf("%s %v: must be an integer", name, raw))
			return def
		}
		v = n
	}
	if v < lo || v > hi {
		p.fail(fmt.Errorf("%s %d: must be between %d and %d", name, v, lo, hi))
	}
	return v
}

func (p *parser) fail(err error) {
	if p.err == nil {
		p.err = err
	}
}

// driver is the S3 storage driver proper, inside base.Base.
type driver struct {
	client  *s3.Client
	presign *s3.PresignClient
	p       *params
	// root is the key prefix of every path: rootdirectory without its
	// leading slashes, with one trailing slash, or "".
	root string
	// The settings of new objects, from the parameters: canned ACL,
	// storage class ("" for none), server-side encryption and its KMS key.
	acl   types.ObjectCannedACL
	class types.StorageClass
	sse   types.ServerSideEncryption
	kmsID *string
	// bufs holds upload buffers of chunkSize bytes between uploads; it
	// has no New, so that an upload with none to take starts small
	// (newBuf).
	bufs sync.Pool
}

// newDriver makes the S3 client for p.
func newDriver(ctx context.Context, p *params) (*driver, error) {
	var creds aws.CredentialsProvider
	if p.accessKey != "" {
		creds = credentials.NewStaticCredentialsProvider(p.accessKey, p.secretKey, p.sessionToken)
	} else {
		c, err := defaultCredentials(ctx, p.region)
		if err != nil {
			return nil, err
		}
		creds = c
	}
	httpClient := awshttp.NewBuildableClient()
	if p.skipVerify {
		httpClient = httpClient.WithTransportOptions(func(t *http.Transport) {
			if t.TLSClientConfig == nil {
				t.TLSClientConfig = &tls.Config{}
			}
			t.TLSClientConfig.InsecureSkipVerify = true
		})
	}
	opts := s3.Options{
		Region:       p.region,
		Credentials:  aws.NewCredentialsCache(creds),
		HTTPClient:   httpClient,
		UsePathStyle: p.forcePathStyle,
		// Checksums only where S3 requires them: the newer default
		// (CRC32 trailers on every upload) is refused by many S3 servers
		// other than AWS, Ceph's radosgw before Squid among them.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		UseAccelerate:              p.accelerate,
	}
	if p.endpoint != "" {
		// Its scheme decides: secure only chose one for an endpoint
		// given without (parseParameters).
		opts.BaseEndpoint = aws.String(p.endpoint)
	} else {
		opts.EndpointOptions.DisableHTTPS = !p.secure
	}
	if p.dualStack {
		opts.EndpointOptions.UseDualStackEndpoint = aws.DualStackEndpointStateEnabled
	}
	if p.fips {
		opts.EndpointOptions.UseFIPSEndpoint = aws.FIPSEndpointStateEnabled
	}
	if p.userAgent != "" {
		opts.APIOptions = append(opts.APIOptions, awsmiddleware.AddUserAgentKey(p.userAgent))
	}
	client := s3.New(opts)
	root := strings.Trim(p.rootDirectory, "/")
	if root != "" {
		root += "/"
	}
	var presignOpts []func(*s3.PresignOptions)
	if p.redirectEndpoint != nil {
		resolver := redirectResolver{u: p.redirectEndpoint, next: s3.NewDefaultEndpointResolverV2()}
		presignOpts = append(presignOpts, func(o *s3.PresignOptions) {
			o.ClientOptions = append(o.ClientOptions, func(o *s3.Options) { o.EndpointResolverV2 = resolver })
		})
	}
	d := &driver{client: client, presign: s3.NewPresignClient(client, presignOpts...), p: p, root: root, acl: types.ObjectCannedACL(p.objectACL)}
	if p.storageClass != noStorageClass {
		d.class = types.StorageClass(p.storageClass)
	}
	switch {
	case !p.encrypt:
	case p.keyID == "":
		d.sse = types.ServerSideEncryptionAes256
	default:
		d.sse, d.kmsID = types.ServerSideEncryptionAwsKms, aws.String(p.keyID)
	}
	return d, nil
}

// Name implements storagedriver.StorageDriver.
func (d *driver) Name() string { return DriverName }

// key returns the object key of path, as the s3-aws driver forms it.
func (d *driver) key(path string) string {
	return strings.TrimLeft(d.root+strings.TrimLeft(path, "/"), "/")
}

// dirPrefix returns the key prefix of everything under path.
func (d *driver) dirPrefix(path string) string {
	k := d.key(path)
	if k == "" || strings.HasSuffix(k, "/") {
		return k
	}
	return k + "/"
}

// path returns the driver path of an object key under root.
func (d *driver) path(key string) string {
	return "/" + strings.TrimPrefix(key, d.root)
}

// errorf wraps err with the operation and the object's bucket and key.
// The driver's name comes before: from base.Base around the driver's
// methods, from named around a writer's.
func (d *driver) errorf(op, key string, err error) error {
	return fmt.Errorf("%s bucket %s key %s: %w", op, d.p.bucket, key, err)
}

// named puts the driver's name before err, as base.Base does for the
// driver's methods, for a writer's, which it does not wrap.
func named(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", DriverName, err)
}

// copySource is the CopySource of key: the bucket and the key,
// URL-encoded.
func (d *driver) copySource(key string) string {
	parts := strings.Split(key, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return d.p.bucket + "/" + strings.Join(parts, "/")
}

// contentType is the Content-Type of every object, as the s3-aws driver
// stores them.
var contentType = aws.String("application/octet-stream")

// putInput is PutObject for key with the driver's object settings.
func (d *driver) putInput(key string) *s3.PutObjectInput {
	return &s3.PutObjectInput{
		Bucket:               aws.String(d.p.bucket),
		Key:                  aws.String(key),
		ContentType:          contentType,
		ACL:                  d.acl,
		ServerSideEncryption: d.sse,
		SSEKMSKeyId:          d.kmsID,
		StorageClass:         d.class,
	}
}

// createMultipart starts a multipart upload to key with the driver's
// object settings and returns its upload ID.
func (d *driver) createMultipart(ctx context.Context, key string) (string, error) {
	in := d.putInput(key)
	out, err := d.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: in.Bucket, Key: in.Key, ContentType: in.ContentType, ACL: in.ACL,
		ServerSideEncryption: in.ServerSideEncryption, SSEKMSKeyId: in.SSEKMSKeyId, StorageClass: in.StorageClass,
	})
	if err != nil {
		return "", d.errorf("create multipart upload", key, err)
	}
	return aws.ToString(out.UploadId), nil
}

var (
	_ storagedriver.StorageDriver = (*driver)(nil)
	_ storagedriver.FileWriter    = (*writer)(nil)
)
