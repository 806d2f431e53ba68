package s3driver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"slices"
	"strings"
	"testing"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/distribution/distribution/v3/registry/storage/driver/testsuites"
)

// testParams returns the parameters of a driver on the S3 server named by
// FERRY_S3_ENDPOINT and FERRY_S3_BUCKET (credentials from the
// environment), under a root directory of its own, or skips the test;
// with FERRY_S3_REQUIRED=1 it fails instead.
func testParams(t *testing.T) map[string]any {
	t.Helper()
	endpoint, bucket := os.Getenv("FERRY_S3_ENDPOINT"), os.Getenv("FERRY_S3_BUCKET")
	if endpoint == "" || bucket == "" {
		if os.Getenv("FERRY_S3_REQUIRED") == "1" {
			t.Fatal("FERRY_S3_REQUIRED=1 but FERRY_S3_ENDPOINT or FERRY_S3_BUCKET is not set")
		}
		t.Skip("no S3 server: set FERRY_S3_ENDPOINT and FERRY_S3_BUCKET (and AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")
	}
	region := os.Getenv("FERRY_S3_REGION")
	if region == "" {
		region = os.Getenv("AWS_REGION")
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	return map[string]any{
		"regionendpoint": endpoint,
		"bucket":         bucket,
		"region":         region,
		"forcepathstyle": true,
		"secure":         strings.HasPrefix(endpoint, "https://"),
		"v4auth":         true,
		"chunksize":      minChunkSize,
		"rootdirectory":  "/s3driver-test/" + hex.EncodeToString(id[:]),
	}
}

// TestDriverSuite runs distribution's storage driver conformance suite on
// a real S3 server. With -short its largest tests are skipped or shrunk
// (the 5 GiB stream, 128 MiB concurrent reads, 32 concurrent streams).
func TestDriverSuite(t *testing.T) {
	p := testParams(t)
	testsuites.Driver(t, func() (storagedriver.StorageDriver, error) {
		return factory.Create(context.Background(), DriverName, p)
	}, false)
}

// TestResumeAcrossDrivers writes an upload in pieces through separate
// drivers, as replicas behind a load balancer do: each piece through a
// fresh driver's Writer(append), each left with a part below S3's
// minimum, one crossing a whole chunk.
func TestResumeAcrossDrivers(t *testing.T) {
	p := testParams(t)
	ctx := context.Background()
	newDriver := func() storagedriver.StorageDriver {
		d, err := factory.Create(ctx, DriverName, p)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	const path = "/repo/_uploads/u1/data"
	data := make([]byte, minChunkSize+3<<20)
	_, _ = rand.Read(data)
	pieces := [][]byte{data[:100], data[100 : 2<<20], data[2<<20 : minChunkSize+1<<20], data[minChunkSize+1<<20:]}
	t.Cleanup(func() { _ = newDriver().Delete(ctx, "/repo") })
	var off int64
	for i, piece := range pieces {
		w, err := newDriver().Writer(ctx, path, i > 0)
		if err != nil {
			t.Fatalf("piece %d: Writer: %v", i, err)
		}
		if w.Size() != off {
			t.Fatalf("piece %d: resumed at %d, want %d", i, w.Size(), off)
		}
		if _, err := w.Write(piece); err != nil {
			t.Fatalf("piece %d: Write: %v", i, err)
		}
		off += int64(len(piece))
		// Size counts what is still buffered: distribution's blob writer
		// checks its digest state against it before every Write
		// (server/bodies.go relies on this).
		if w.Size() != off {
			t.Fatalf("piece %d: Size %d after Write, want %d", i, w.Size(), off)
		}
		if i == len(pieces)-1 {
			if err := w.Commit(ctx); err != nil {
				t.Fatalf("Commit: %v", err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatalf("piece %d: Close: %v", i, err)
		}
	}
	got, err := newDriver().GetContent(ctx, path)
	if err != nil || !slices.Equal(got, data) {
		t.Fatalf("content: %d bytes, %v; want the %d written", len(got), err, len(data))
	}
	// Move above the multipart copy threshold copies in parts.
	p2 := maps(p, map[string]any{"multipartcopythresholdsize": minChunkSize, "multipartcopychunksize": minChunkSize})
	d2, err := factory.Create(ctx, DriverName, p2)
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.Move(ctx, path, "/repo/blob"); err != nil {
		t.Fatalf("Move: %v", err)
	}
	got, err = d2.GetContent(ctx, "/repo/blob")
	if err != nil || !slices.Equal(got, data) {
		t.Fatalf("moved content: %d bytes, %v; want the %d written", len(got), err, len(data))
	}
	if _, err := d2.Stat(ctx, path); err == nil {
		t.Errorf("Stat of the moved file: no error")
	}
}

// TestWalkFlat checks Walk's inferred directories, ErrSkipDir and the
// start-after hint against a small tree.
func TestWalkFlat(t *testing.T) {
	p := testParams(t)
	ctx := context.Background()
	d, err := factory.Create(ctx, DriverName, p)
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"/w/a/1", "/w/a/b/2", "/w/a-x", "/w/c/d/3", "/w/c/e"}
	for _, f := range files {
		if err := d.PutContent(ctx, f, []byte(f)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = d.Delete(ctx, "/w") })
	walk := func(skip string, opts ...func(*storagedriver.WalkOptions)) []string {
		var got []string
		err := d.Walk(ctx, "/w", func(fi storagedriver.FileInfo) error {
			s := fi.Path()
			if fi.IsDir() {
				s += "/"
			}
			got = append(got, s)
			if fi.Path() == skip {
				return storagedriver.ErrSkipDir
			}
			return nil
		}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		return got
	}
	all := []string{"/w/a-x", "/w/a/", "/w/a/1", "/w/a/b/", "/w/a/b/2", "/w/c/", "/w/c/d/", "/w/c/d/3", "/w/c/e"}
	if got := walk(""); !slices.Equal(got, all) {
		t.Errorf("walk: %q\nwant %q", got, all)
	}
	if got, want := walk("/w/a"), []string{"/w/a-x", "/w/a/", "/w/c/", "/w/c/d/", "/w/c/d/3", "/w/c/e"}; !slices.Equal(got, want) {
		t.Errorf("walk skipping /w/a: %q\nwant %q", got, want)
	}
	if got, want := walk("", storagedriver.WithStartAfterHint("/w/c/d/3")), []string{"/w/c/e"}; !slices.Equal(got, want) {
		t.Errorf("walk after /w/c/d/3: %q\nwant %q", got, want)
	}
}

// maps returns a copy of a with b's entries added.
func maps(a, b map[string]any) map[string]any {
	m := make(map[string]any, len(a)+len(b))
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		m[k] = v
	}
	return m
}

func TestParameters(t *testing.T) {
	for _, c := range []struct {
		p    map[string]any
		want string // in the error; "" for none
	}{
		{map[string]any{"bucket": "b", "region": "eu-west-1"}, ""},
		{map[string]any{"bucket": "b", "regionendpoint": "http://127.0.0.1:7480", "secure": "false", "chunksize": "5242880", "loglevel": "debug"}, ""},
		{map[string]any{"bucket": "b", "regionendpoint": "rgw.internal:7480", "secure": false, "storageclass": "none", "objectacl": "bucket-owner-full-control"}, ""},
		{map[string]any{"region": "eu-west-1"}, "bucket"},
		{map[string]any{"bucket": "b"}, "region"},
		{map[string]any{"bucket": "b", "region": "r", "v4auth": false}, "v4auth"},
		{map[string]any{"bucket": "b", "region": "r", "chunksize": 1024}, "chunksize 1024"},
		{map[string]any{"bucket": "b", "region": "r", "chunksize": "big"}, "chunksize big"},
		{map[string]any{"bucket": "b", "region": "r", "secure": "maybe"}, "secure"},
		{map[string]any{"bucket": "b", "region": "r", "storageclass": "GLACIER"}, "storageclass"},
		{map[string]any{"bucket": "b", "region": "r", "objectacl": "open"}, "objectacl"},
		{map[string]any{"bucket": "b", "region": "r", "accesskey": "k"}, "secretkey"},
		{map[string]any{"bucket": "b", "region": "r", "colour": "red", "bukket": "x"}, "unknown parameter(s) bukket, colour"},
		{map[string]any{"bucket": "b", "region": "r", "regionendpoint": "ftp://h"}, "regionendpoint"},
		{map[string]any{"bucket": "b", "region": "r", "redirectendpoint": "https://cdn/x"}, "redirectendpoint"},
	} {
		_, err := factory.Create(context.Background(), DriverName, c.p)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v: %v", c.p, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%v: err = %v, want one naming %q", c.p, err, c.want)
		}
	}
}

func TestKeys(t *testing.T) {
	for _, c := range []struct{ root, path, key, dir string }{
		{"", "/a/b", "a/b", "a/b/"},
		{"", "/", "", ""},
		{"/registry", "/a", "registry/a", "registry/a/"},
		{"registry/", "/", "registry/", "registry/"},
		{"/x/y/", "/docker/registry", "x/y/docker/registry", "x/y/docker/registry/"},
	} {
		p, err := parseParameters(map[string]any{"bucket": "b", "region": "r", "rootdirectory": c.root})
		if err != nil {
			t.Fatal(err)
		}
		d, err := newDriver(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		if k, dir := d.key(c.path), d.dirPrefix(c.path); k != c.key || dir != c.dir {
			t.Errorf("root %q path %q: key %q dir %q, want %q %q", c.root, c.path, k, dir, c.key, c.dir)
		}
		if c.path != "/" && d.path(c.key) != c.path {
			t.Errorf("root %q: path(%q) = %q, want %q", c.root, c.key, d.path(c.key), c.path)
		}
	}
}

func TestNewDirs(t *testing.T) {
	paths := func(fis []storagedriver.FileInfoInternal) []string {
		var s []string
		for _, fi := range fis {
			s = append(s, fi.Path())
		}
		return s
	}
	for _, c := range []struct {
		from, prev, hint, p string
		want                []string
	}{
		{"/", "", "", "/a/b/c", []string{"/a", "/a/b"}},
		{"/a", "", "", "/a/b/c", []string{"/a/b"}},
		{"/", "/a/b/x", "", "/a/b/c", nil},
		{"/", "/a/b/x", "", "/a/d/c", []string{"/a/d"}},
		{"/", "/a-b", "", "/a/c", []string{"/a"}},
		{"/", "", "/a/b/x", "/a/b/y/z", []string{"/a/b/y"}},
		{"/", "", "", "/f", nil},
	} {
		if got := paths(newDirs(c.from, c.prev, c.hint, c.p)); !slices.Equal(got, c.want) {
			t.Errorf("newDirs(%q, %q, %q, %q) = %q, want %q", c.from, c.prev, c.hint, c.p, got, c.want)
		}
	}
}

// TestParametersHidePassword: an endpoint refused for its form is named
// without the password of a user part, whether or not it parses.
func TestParametersHidePassword(t *testing.T) {
	for key, v := range map[string]string{
		"regionendpoint":   "https://key:SECRET@s3.example:port/",
		"redirectendpoint": "https://key:SECRET@cdn.example/x",
	} {
		_, err := factory.Create(context.Background(), DriverName, map[string]any{"bucket": "b", "region": "r", key: v})
		if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "example") {
			t.Errorf("%s %s: err = %v, want one naming the endpoint without its password", key, v, err)
		}
	}
}
