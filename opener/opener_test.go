package opener

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"github.com/ferry-dev/ferry/location"
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/ocilayout"
	"github.com/ferry-dev/ferry/store/registry"
)

// startRegistry serves an empty in-memory registry and returns its host.
func startRegistry(t *testing.T) string {
	t.Helper()
	s := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func parse(t *testing.T, s string) location.Location {
	t.Helper()
	loc, err := DefaultNetwork().Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func openSource(t *testing.T, o *Opener, s string) store.Source {
	t.Helper()
	src, err := o.Source(context.Background(), parse(t, s))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// TestNetworkOptions: the options derived from a Network are the ones
// the global flags used to wire by hand: the retry delay reaches the
// registry client, the fetcher (as a fixed backoff) and the engine only
// when set, and every option is accepted by its constructor.
func TestNetworkOptions(t *testing.T) {
	for _, tc := range []struct {
		net                  Network
		reg, fetch, transfer int
	}{
		{Network{}, 2, 1, 0},
		{DefaultNetwork(), 2, 1, 0},
		{Network{Insecure: true, StallTimeout: time.Second, RetryDelay: 10 * time.Millisecond}, 3, 2, 1},
	} {
		if got := len(tc.net.RegistryOptions()); got != tc.reg {
			t.Errorf("%+v: %d registry options, want %d", tc.net, got, tc.reg)
		}
		if got := len(tc.net.ForeignOptions()); got != tc.fetch {
			t.Errorf("%+v: %d foreign options, want %d", tc.net, got, tc.fetch)
		}
		if got := len(tc.net.TransferOptions()); got != tc.transfer {
			t.Errorf("%+v: %d transfer options, want %d", tc.net, got, tc.transfer)
		}
		if _, err := New(tc.net).Fetcher(nil, 0); err != nil {
			t.Errorf("%+v: Fetcher: %v", tc.net, err)
		}
		if _, err := New(tc.net).Fetcher([]string{"^http://127"}, 4); err != nil {
			t.Errorf("%+v: Fetcher with allow and connections: %v", tc.net, err)
		}
	}
	if DefaultNetwork().StallTimeout != registry.DefaultStallTimeout {
		t.Errorf("DefaultNetwork stall timeout %s, want %s", DefaultNetwork().StallTimeout, registry.DefaultStallTimeout)
	}
}

// TestNetworkParse: Insecure lets a non-loopback registry reference use
// plain HTTP, as --insecure does.
func TestNetworkParse(t *testing.T) {
	loc, err := Network{Insecure: true}.Parse("registry.example/app:1")
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Ref.Context().Scheme(); got != "http" {
		t.Errorf("insecure scheme %q, want http", got)
	}
	if loc, err = DefaultNetwork().Parse("registry.example/app:1"); err != nil || loc.Ref.Context().Scheme() != "https" {
		t.Errorf("default scheme %q, %v; want https", loc.Ref.Context().Scheme(), err)
	}
}

// TestMountSource: a target mounts from a source on the same registry,
// never from one on another registry or from a local source.
func TestMountSource(t *testing.T) {
	a, b := startRegistry(t), startRegistry(t)
	o := New(DefaultNetwork())
	dst := parse(t, a+"/team/app:1")
	same := openSource(t, o, a+"/base/servercore:ltsc2022")
	if repo, ok := MountSource(dst, same); !ok || repo.RepositoryStr() != "base/servercore" {
		t.Errorf("same registry: MountSource = %v, %v; want base/servercore, true", repo, ok)
	}
	if _, ok := MountSource(dst, openSource(t, o, b+"/base/servercore:ltsc2022")); ok {
		t.Error("another registry: MountSource = true")
	}
	if _, ok := MountSource(dst, openSource(t, o, "oci:"+t.TempDir())); ok {
		t.Error("an OCI layout: MountSource = true")
	}
	if _, ok := MountSource(parse(t, "oci:"+t.TempDir()), same); ok {
		t.Error("to an OCI layout: MountSource = true")
	}
	if _, ok := MountSource(dst, nil); ok {
		t.Error("no source: MountSource = true")
	}
}

// TestDefaultRepoTag: a docker-archive records the tag its location
// names, else a registry source's full tag, else none.
func TestDefaultRepoTag(t *testing.T) {
	host := startRegistry(t)
	o := New(DefaultNetwork())
	byTag := openSource(t, o, host+"/windows/servercore:ltsc2022")
	byDigest := openSource(t, o, host+"/windows/servercore@sha256:"+strings.Repeat("a", 64))
	layout := openSource(t, o, "oci:"+t.TempDir()+":v1")
	archive := parse(t, "docker-archive:"+filepath.Join(t.TempDir(), "x.tar"))
	named := parse(t, "docker-archive:"+filepath.Join(t.TempDir(), "x.tar")+":mine/app:2")
	for _, tc := range []struct {
		what string
		loc  location.Location
		src  store.Source
		want string
	}{
		{"named, registry source", named, byTag, "mine/app:2"},
		{"unnamed, registry source by tag", archive, byTag, host + "/windows/servercore:ltsc2022"},
		{"unnamed, registry source by digest", archive, byDigest, ""},
		{"unnamed, layout source", archive, layout, ""},
		{"unnamed, no source", archive, nil, ""},
	} {
		if got := DefaultRepoTag(tc.loc, tc.src); got != tc.want {
			t.Errorf("%s: DefaultRepoTag = %q, want %q", tc.what, got, tc.want)
		}
	}
	if tag, ok := SourceTag(byTag); !ok || tag.TagStr() != "ltsc2022" {
		t.Errorf("SourceTag = %v, %v; want ltsc2022", tag, ok)
	}
}

// TestRefusals: writing to a layout by digest and registry-only work on a
// local location are bad input (location.ErrInvalid), in plain words.
func TestRefusals(t *testing.T) {
	ctx := context.Background()
	o := New(DefaultNetwork())
	loc := parse(t, "oci:"+t.TempDir()+"@sha256:"+strings.Repeat("b", 64))
	if _, err := o.Target(ctx, loc, nil); !errors.Is(err, location.ErrInvalid) || err.Error() != loc.Raw+": write to a layout by tag, not by digest" {
		t.Errorf("Target(layout by digest) = %v; want ErrInvalid, write by tag", err)
	}
	loc = parse(t, "oci:"+t.TempDir())
	if _, err := o.Repository(ctx, loc, false); !errors.Is(err, location.ErrInvalid) || !strings.HasSuffix(err.Error(), "needs a registry reference, not a oci location") {
		t.Errorf("Repository(oci) = %v; want ErrInvalid, needs a registry reference", err)
	}
}

// TestResolver: the resolver opens references as a user writes them, and
// the opener closes what it opened.
func TestResolver(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	o := New(DefaultNetwork())
	r := o.Resolver()
	dst, err := r.Target(ctx, "oci:"+dir+":v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := dst.(*ocilayout.Layout); !ok {
		t.Errorf("Target(oci:) = %T; want an OCI layout", dst)
	}
	dst.Close()
	if _, err := r.Source(ctx, "oci:"+dir+":v1"); err != nil {
		t.Fatal(err)
	}
	if len(o.closer) != 1 {
		t.Errorf("opener keeps %d sources; want 1", len(o.closer))
	}
	if _, err := r.Source(ctx, ""); !errors.Is(err, location.ErrInvalid) {
		t.Errorf("Source(\"\") = %v; want ErrInvalid", err)
	}
	if err := o.Close(); err != nil || len(o.closer) != 0 {
		t.Errorf("Close = %v, keeps %d", err, len(o.closer))
	}
}
