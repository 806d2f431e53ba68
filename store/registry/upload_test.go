package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httputil"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

// passthrough passes on a blob.Reader's bytes, as the copy engine's
// progress counter does: PushBlob reuses its verdict (blob.Ensure).
type passthrough struct{ *blob.Reader }

// sources are the readers PushBlob is given: plain bytes, and a stream the
// copy engine already verifies against the same descriptor.
var sources = []struct {
	name string
	open func(t *testing.T, b []byte, desc v1.Descriptor) io.Reader
}{
	{"plain", func(t *testing.T, b []byte, _ v1.Descriptor) io.Reader { return bytes.NewReader(b) }},
	{"verified", func(t *testing.T, b []byte, desc v1.Descriptor) io.Reader {
		v, err := blob.NewReader(bytes.NewReader(b), desc.Digest, desc.Size, "test")
		if err != nil {
			t.Fatal(err)
		}
		return passthrough{v}
	}},
}

// randomBlob returns size bytes, the same for the same seed.
func randomBlob(size int, seed int64) ([]byte, v1.Descriptor) {
	b := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(b)
	return b, blob.DescriptorOf(b, types.OCILayer)
}

// uploadBody passes on a blob that matches, however its source splits the
// reads, and never passes on all the declared bytes of one that does not:
// the last is held back until the source has ended.
func TestUploadBody(t *testing.T) {
	data, desc := randomBlob(1000, 1)
	corrupt := bytes.Clone(data)
	corrupt[999] ^= 1
	long := append(bytes.Clone(data), 'x')
	empty := blob.DescriptorOf(nil, types.OCILayer)
	unsized := desc
	unsized.Size = -1
	split := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"data+EOF": iotest.DataErrReader,
	}
	for _, c := range []struct {
		name    string
		desc    v1.Descriptor
		content []byte
		want    error
	}{
		{"good", desc, data, nil},
		{"corrupt", desc, corrupt, blob.ErrDigestMismatch},
		{"short", desc, data[:999], blob.ErrSizeMismatch},
		{"long", desc, long, blob.ErrSizeMismatch},
		{"empty", empty, nil, nil},
		{"empty long", empty, []byte("x"), blob.ErrSizeMismatch},
		{"unsized", unsized, data, nil},
		{"unsized corrupt", unsized, corrupt, blob.ErrDigestMismatch},
	} {
		for how, wrap := range split {
			t.Run(c.name+"/"+how, func(t *testing.T) {
				b, err := newUploadBody(wrap(bytes.NewReader(c.content)), c.desc)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(b)
				if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
					t.Fatalf("read %d bytes, %v; want an error wrapping %v", len(got), err, c.want)
				}
				if !errors.Is(b.failed(), c.want) || (c.want == nil) != (b.failed() == nil) {
					t.Errorf("failed() = %v, want %v", b.failed(), c.want)
				}
				if c.want == nil && !bytes.Equal(got, c.content) {
					t.Errorf("passed on %d other bytes", len(got))
				}
				if c.want != nil && c.desc.Size > 0 && int64(len(got)) >= c.desc.Size {
					t.Errorf("passed on all %d declared bytes of a blob that does not match", len(got))
				}
			})
		}
	}
}

// Bytes that are not the descriptor's fail the push with the blob
// package's sentinel before the registry has them all: the registry holds
// no blob afterwards (a byte too many used to reach it only after it had
// committed the declared length), and the upload is cancelled. Blobs
// larger than one read go through too.
func TestPushBlobBadBytesCommitsNothing(t *testing.T) {
	reg := fixture.NewRegistry(t)
	ref, err := name.ParseReference(reg.Ref("app", "v1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	repo, err := Open(ctx, ref, WithPush())
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	seed := int64(0)
	for _, size := range []int{1000, 3<<20 + 7} {
		for _, src := range sources {
			for _, c := range []struct {
				name string
				bad  func([]byte) []byte
				want error
			}{
				{"corrupt", func(b []byte) []byte { c := bytes.Clone(b); c[len(c)/2] ^= 1; return c }, blob.ErrDigestMismatch},
				{"short", func(b []byte) []byte { return b[:len(b)-1] }, blob.ErrSizeMismatch},
				{"long", func(b []byte) []byte { return append(bytes.Clone(b), 'x') }, blob.ErrSizeMismatch},
				{"good", func(b []byte) []byte { return b }, nil},
			} {
				t.Run(fmt.Sprintf("%d/%s/%s", size, src.name, c.name), func(t *testing.T) {
					seed++
					data, desc := randomBlob(size, seed) // a blob of its own
					deletes := reg.Count("DELETE", "/blobs/uploads/")
					err := repo.PushBlob(ctx, desc, src.open(t, c.bad(data), desc))
					if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
						t.Errorf("PushBlob: %v, want an error wrapping %v", err, c.want)
					}
					if c.want == nil {
						if !reg.BlobDigestOK(t, "app", desc.Digest) {
							t.Error("the registry does not serve the blob pushed")
						}
						return
					}
					if reg.HasBlob(t, "app", desc.Digest) {
						t.Error("the registry holds the blob of a failed push")
					}
					if n := reg.Count("DELETE", "/blobs/uploads/") - deletes; n != 1 {
						t.Errorf("%d DELETEs of the abandoned upload, want 1", n)
					}
				})
			}
		}
	}
}

// A registry's DIGEST_INVALID (here: a proxy corrupts the bytes on the
// way) fails the push with an error wrapping blob.ErrDigestMismatch.
func TestPushBlobDigestInvalid(t *testing.T) {
	reg := fixture.NewRegistry(t)
	repo := openProxied(t, reg, "app:v1", func(rp *httputil.ReverseProxy) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") {
				b, err := io.ReadAll(r.Body)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				b[0] ^= 1
				r.Body = io.NopCloser(bytes.NewReader(b))
			}
			rp.ServeHTTP(w, r)
		})
	})
	ctx := context.Background()
	data, desc := randomBlob(1000, 1)
	if err := repo.PushBlob(ctx, desc, bytes.NewReader(data)); !errors.Is(err, blob.ErrDigestMismatch) || !strings.Contains(err.Error(), "DIGEST_INVALID") {
		t.Errorf("PushBlob corrupted on the way: %v, want the registry's DIGEST_INVALID wrapping blob.ErrDigestMismatch", err)
	}
}
