package cli

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/server"
)

// resolves reports whether ref (a tag or digest) resolves, with the
// digest it names.
func resolves(t *testing.T, ref string) (v1.Hash, bool) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(r)
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return v1.Hash{}, false
	}
	if err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return d.Digest, true
}

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestDeleteTagThenDigest runs against ferry serve --delete and
// distribution's registry binary: one manifest tagged a and b and listed
// by the index at multi, another at other. Deleting the tag a leaves b,
// the manifest and the index (before, it deleted the manifest and b with
// it). --dry-run by digest lists b and multi and deletes nothing;
// deleting by digest removes the manifest and b, and leaves other.
func TestDeleteTagThenDigest(t *testing.T) {
	for _, c := range []struct {
		name  string
		start func(t *testing.T) string
	}{
		{"ferry serve", func(t *testing.T) string {
			host, _ := ferryServer(t, t.TempDir(), server.WithDelete(true))
			return host
		}},
		{"reference registry", func(t *testing.T) string {
			return referenceRegistry(t, t.TempDir())
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			host := c.start(t)
			ref := func(ident string) string {
				if strings.HasPrefix(ident, "sha256:") {
					return host + "/app@" + ident
				}
				return host + "/app:" + ident
			}
			img, other := randomImage(t), randomImage(t)
			d := digestOf(t, img)
			pushRemote(t, ref("a"), img)
			pushRemote(t, ref("b"), img)
			pushRemote(t, ref("other"), other)
			idx := mutate.AppendManifests(fixture.Index(t), mutate.IndexAddendum{Add: img}, mutate.IndexAddendum{Add: other})
			r, err := name.ParseReference(ref("multi"))
			if err != nil {
				t.Fatal(err)
			}
			if err := remote.WriteIndex(r, idx); err != nil {
				t.Fatal(err)
			}
			idxDigest, err := idx.Digest()
			if err != nil {
				t.Fatal(err)
			}

			out, stderr, code := run(t, "delete", ref("a"))
			if code != 0 || out != "" || !strings.Contains(stderr, "deleted the tag "+ref("a")) || !strings.Contains(stderr, d.String()+" stays") {
				t.Fatalf("delete by tag: exit %d, %q %s", code, out, stderr)
			}
			if _, ok := resolves(t, ref("a")); ok {
				t.Error("the tag a still resolves")
			}
			for _, ident := range []string{"b", d.String()} {
				if got, ok := resolves(t, ref(ident)); !ok || got != d {
					t.Errorf("after deleting the tag a, %s resolves to %s (%v), want the manifest %s", ident, got, ok, d)
				}
			}
			if got, ok := resolves(t, ref("multi")); !ok || got != idxDigest {
				t.Errorf("the index at multi: %s %v", got, ok)
			}

			out, stderr, code = run(t, "delete", "--dry-run", ref(d.String()))
			want := "tag " + ref("b") + "\nindex " + ref("multi") + " " + idxDigest.String() + "\n"
			if code != 0 || out != want || !strings.Contains(stderr, "nothing deleted") || !strings.Contains(stderr, "1 tag with it") {
				t.Errorf("dry run by digest: exit %d, stdout %q, want %q; stderr %s", code, out, want, stderr)
			}
			if _, ok := resolves(t, ref(d.String())); !ok {
				t.Fatal("the dry run deleted the manifest")
			}

			out, stderr, code = run(t, "delete", ref(d.String()))
			if code != 0 || out != want || !strings.Contains(stderr, "deleted the manifest") || !strings.Contains(stderr, "1 index listed above keeps an entry") {
				t.Fatalf("delete by digest: exit %d, %q %s", code, out, stderr)
			}
			for _, ident := range []string{d.String(), "b"} {
				if _, ok := resolves(t, ref(ident)); ok {
					t.Errorf("%s still resolves after deleting the manifest", ident)
				}
			}
			if got, ok := resolves(t, ref("other")); !ok || got != digestOf(t, other) {
				t.Errorf("other: %s %v", got, ok)
			}
		})
	}
}

// TestDeleteTagRefused: a registry that refuses to delete a tag (400 or
// 405, as the distribution spec allows, or ferry serve without --delete)
// gets an error naming the digest form, and the manifest is not deleted
// in the tag's place.
func TestDeleteTagRefused(t *testing.T) {
	reg := fixture.NewRegistry(t)
	img := randomImage(t)
	d := reg.Push(t, "app", "a", img)
	for _, status := range []int{http.StatusMethodNotAllowed, http.StatusBadRequest} {
		reg.Fail("DELETE", "/manifests/a", status, 1)
		_, stderr, code := run(t, "delete", reg.Ref("app", "a"))
		if code != 1 || !strings.Contains(stderr, "refused to delete the tag") || !strings.Contains(stderr, reg.Ref("app", d.String())) {
			t.Errorf("%d: exit %d: %s", status, code, stderr)
		}
	}
	if n := reg.Count("DELETE", "/manifests/sha256:"); n != 0 {
		t.Errorf("%d DELETE by digest after the tag was refused", n)
	}
	if !reg.TagExists(t, "app", "a") {
		t.Error("the tag is gone")
	}

	// distribution answers 405 UNSUPPORTED when deletes are off.
	host, _ := ferryServer(t, t.TempDir())
	pushRemote(t, host+"/app:a", img)
	_, stderr, code := run(t, "delete", host+"/app:a")
	if code != 1 || !strings.Contains(stderr, "UNSUPPORTED") || !strings.Contains(stderr, host+"/app@"+d.String()) {
		t.Errorf("ferry serve without --delete: exit %d: %s", code, stderr)
	}
	if _, ok := resolves(t, host+"/app:a"); !ok {
		t.Error("the tag is gone")
	}
}
