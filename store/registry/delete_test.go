package registry

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/store"
)

func openRef(t *testing.T, ref string) *Repo {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := Open(context.Background(), r, WithPush(), WithInsecure(true))
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// Pointers finds the tags on a manifest and the tagged indexes listing
// it, also through an index listed in an index; Delete by tag removes
// the tag alone, and a refusal wraps ErrTagDeleteRefused.
func TestPointersAndDelete(t *testing.T) {
	ctx := context.Background()
	reg := fixture.NewRegistry(t)
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	other, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	d := reg.Push(t, "app", "a", img)
	reg.Push(t, "app", "b", img)
	reg.Push(t, "app", "other", other)
	inner := mutate.AppendManifests(fixture.Index(t), mutate.IndexAddendum{Add: img})
	outer := mutate.AppendManifests(fixture.Index(t), mutate.IndexAddendum{Add: inner}, mutate.IndexAddendum{Add: other})
	onlyOther := mutate.AppendManifests(fixture.Index(t), mutate.IndexAddendum{Add: other})
	for tag, idx := range map[string]v1.ImageIndex{"outer": outer, "only-other": onlyOther} {
		r, _ := name.ParseReference(reg.Ref("app", tag))
		if err := remote.WriteIndex(r, idx); err != nil {
			t.Fatal(err)
		}
	}
	outerDigest, _ := outer.Digest()

	p, err := openRef(t, reg.Ref("app", "b")).Pointers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := &Pointers{Digest: d, Tags: []string{"a", "b"}, Indexes: []TaggedIndex{{Tag: "outer", Digest: outerDigest}}}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("Pointers = %+v, want %+v", p, want)
	}

	if err := openRef(t, reg.Ref("app", "a")).Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if reg.TagExists(t, "app", "a") || !reg.TagExists(t, "app", "b") || !reg.TagExists(t, "app", d.String()) {
		t.Error("delete by tag did not remove the tag alone")
	}

	reg.Fail("DELETE", "/manifests/b", http.StatusMethodNotAllowed, 1)
	err = openRef(t, reg.Ref("app", "b")).Delete(ctx)
	if !errors.Is(err, ErrTagDeleteRefused) || !strings.Contains(err.Error(), reg.Ref("app", d.String())) {
		t.Errorf("refused tag delete: %v", err)
	}
	if err := openRef(t, reg.Ref("app", "gone")).Delete(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete of an unknown tag: %v", err)
	}

	if err := openRef(t, reg.Ref("app", d.String())).Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if reg.TagExists(t, "app", "b") || reg.TagExists(t, "app", d.String()) {
		t.Error("delete by digest left the manifest or its tag")
	}
}

// WithDelete asks the token server for the delete action, which a
// registry with token authentication checks on DELETE.
func TestWithDeleteAsksForDeleteScope(t *testing.T) {
	var mu sync.Mutex
	var scopes []string
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/token":
			mu.Lock()
			scopes = append(scopes, r.URL.Query()["scope"]...)
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"token":"t"}`))
		case r.Header.Get("Authorization") != "Bearer t":
			w.Header().Set("Www-Authenticate", `Bearer realm="`+srv.URL+`/token",service="test"`)
			w.WriteHeader(http.StatusUnauthorized)
		case r.Method == http.MethodDelete && r.URL.Path == "/v2/app/manifests/a":
			w.WriteHeader(http.StatusAccepted)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	defer srv.Close()
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/app:a")
	if err != nil {
		t.Fatal(err)
	}
	repo, err := Open(context.Background(), ref, WithPush(), WithDelete(ref.Context()), WithInsecure(true), WithAuth(authn.Anonymous))
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Delete(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(scopes, "repository:app:push,pull,delete") {
		t.Errorf("token scopes %q lack repository:app:push,pull,delete", scopes)
	}
}
