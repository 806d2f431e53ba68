package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/server"
)

// sbomType is the artifactType of the referrer uiEnv pushes.
const sbomType = "application/vnd.example.sbom.v1+json"

// uiEnv is a Microsoft-like registry (a two-platform Windows index with
// foreign layers) with an SBOM referring to the index and an image whose
// label and annotation hold markup.
type uiEnv struct {
	*fixture.Env
	SBOM v1.Hash
	Evil v1.Hash
}

func newUIEnv(t testing.TB) *uiEnv {
	t.Helper()
	e := &uiEnv{Env: fixture.MicrosoftLike(t)}
	idx, err := remote.Get(mustRef(t, e.Reg.Ref(fixture.Repo, fixture.IndexTag)))
	if err != nil {
		t.Fatal(err)
	}
	sbom := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), sbomType)
	sbom = mutate.Subject(sbom, idx.Descriptor).(v1.Image)
	e.SBOM = e.Reg.Push(t, fixture.Repo, "sha256:"+mustDigest(t, sbom).Hex, sbom)
	cf, err := e.Single.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config.Labels = map[string]string{"evil": "<script>alert(1)</script>"}
	evil, err := mutate.ConfigFile(e.Single, cf)
	if err != nil {
		t.Fatal(err)
	}
	evil = mutate.Annotations(evil, map[string]string{"note": "<script>alert(2)</script>"}).(v1.Image)
	e.Evil = e.Reg.Push(t, "evil/repo", "v1", evil)
	return e
}

func mustRef(t testing.TB, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustDigest(t testing.TB, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// getUI fetches path from the registry, as JSON when asJSON, and returns
// the status and body.
func getUI(t *testing.T, base, path string, asJSON bool, user ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if asJSON {
		req.Header.Set("Accept", "application/json")
	}
	if len(user) == 2 {
		req.SetBasicAuth(user[0], user[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func wantContains(t *testing.T, what, body string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(body, s) {
			t.Errorf("%s lacks %q:\n%s", what, s, body)
		}
	}
}

func TestUIPages(t *testing.T) {
	e := newUIEnv(t)
	base := e.Reg.URL
	host := e.Reg.Host

	t.Run("repositories", func(t *testing.T) {
		code, h, body := getUI(t, base, "/", false)
		if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
			t.Fatalf("GET / = %d %s", code, h.Get("Content-Type"))
		}
		wantContains(t, "/", body, `href="/ui/r/windows/servercore"`, `href="/ui/r/evil/repo"`, `<form method="get" action="/"`, `/ui/static/style.css`)
		// Not a mirror: no upstreams. No script, and the policy allows none.
		if strings.Contains(body, "upstream") || strings.Contains(body, "<script") || strings.Contains(h.Get("Content-Security-Policy"), "script-src") {
			t.Errorf("GET / names an upstream or has or allows scripts (policy %q):\n%s", h.Get("Content-Security-Policy"), body)
		}
		var page struct{ Repositories []string }
		code, _, body = getUI(t, base, "/?q=servercore", true)
		if err := json.Unmarshal([]byte(body), &page); code != 200 || err != nil || fmt.Sprint(page.Repositories) != "[windows/servercore]" {
			t.Fatalf("GET /?q=servercore as JSON = %d %s (%v)", code, body, err)
		}
	})
	t.Run("tags", func(t *testing.T) {
		_, _, body := getUI(t, base, "/ui/r/windows/servercore", false)
		wantContains(t, "tags page", body, `href="/ui/m/windows/servercore:ltsc"`, `href="/ui/m/windows/servercore:ltsc2019"`)
		var page struct{ Tags []string }
		code, _, body := getUI(t, base, "/ui/r/windows/servercore", true)
		if err := json.Unmarshal([]byte(body), &page); code != 200 || err != nil || fmt.Sprint(page.Tags) != "[ltsc ltsc2019]" {
			t.Fatalf("tags as JSON = %d %s (%v)", code, body, err)
		}
	})
	t.Run("index", func(t *testing.T) {
		_, _, body := getUI(t, base, "/ui/m/windows/servercore:ltsc", false)
		wantContains(t, "index page", body, e.Index.String(), "ltsc2019 · "+fixture.OSVersion1, "ltsc2022 · "+fixture.OSVersion2,
			"/ui/m/windows/servercore@"+e.Manifests[1].String(), "application/vnd.example.sbom.v1", e.SBOM.String(),
			"docker pull "+host+"/windows/servercore:ltsc", "ferry copy "+host+"/windows/servercore:ltsc", "crane pull "+host+"/windows/servercore:ltsc")
		var page struct {
			MediaType string
			TotalSize int64
			Platforms []struct {
				OS        string
				OSVersion string `json:"os.version"`
				Release   string
				Digest    string
			}
			Referrers []struct {
				ArtifactType string
				Manifests    []string
			}
		}
		_, _, body = getUI(t, base, "/ui/m/windows/servercore:ltsc", true)
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		if page.MediaType != string(types.DockerManifestList) || len(page.Platforms) != 2 || page.Platforms[1].OSVersion != fixture.OSVersion2 || page.Platforms[0].Release != "ltsc2019" || page.Platforms[1].Release != "ltsc2022" ||
			len(page.Referrers) != 1 || page.Referrers[0].ArtifactType != sbomType || page.TotalSize <= 0 {
			t.Fatalf("index as JSON: %+v\n%s", page, body)
		}
	})
	t.Run("image", func(t *testing.T) {
		ref := "/ui/m/windows/servercore@" + e.Manifests[0].String()
		_, _, body := getUI(t, base, ref, false)
		wantContains(t, "image page", body, fixture.OSVersion1, `<strong class="badge">foreign</strong>`, e.URLs.CDNURL(e.Foreign[0].Hex)[:20],
			`class="blob-missing"`, `class="blob-cached"`, "docker pull "+host+"/windows/servercore@"+e.Manifests[0].String())
		var page struct {
			Image struct {
				OS        string
				OSVersion string `json:"os.version"`
				Created   string
				Layers    []struct {
					Digest  string
					Foreign bool
					URLs    []string
					Blob    string
				}
				History []struct{ CreatedBy string }
			}
		}
		_, _, body = getUI(t, base, ref, true)
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		ls := page.Image.Layers
		if page.Image.OS != "windows" || page.Image.OSVersion != fixture.OSVersion1 || page.Image.Created == "" || len(ls) != 3 ||
			!ls[0].Foreign || len(ls[0].URLs) == 0 || ls[0].Blob != "missing" || ls[2].Foreign || ls[2].Blob != "cached" || len(page.Image.History) == 0 {
			t.Fatalf("image as JSON: %+v\n%s", page, body)
		}
	})
	t.Run("escaping", func(t *testing.T) {
		_, _, body := getUI(t, base, "/ui/m/evil/repo:v1", false)
		if strings.Contains(body, "<script") {
			t.Fatalf("markup from a label or annotation rendered as markup:\n%s", body)
		}
		wantContains(t, "evil page", body, "&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;script&gt;alert(2)&lt;/script&gt;")
		// The filter is given back in the page.
		_, _, body = getUI(t, base, "/?q=%3Cscript%3Ealert(3)%3C/script%3E", false)
		if strings.Contains(body, "<script") || !strings.Contains(body, "&lt;script&gt;alert(3)&lt;/script&gt;") {
			t.Fatalf("a filter holding markup is not given back as text:\n%s", body)
		}
	})
	t.Run("not found", func(t *testing.T) {
		for _, p := range []string{"/ui/m/windows/servercore:nope", "/ui/r/no/such", "/ui/m/evil/repo@" + e.Manifests[0].String(), "/ui/nothing"} {
			if code, _, body := getUI(t, base, p, true); code != http.StatusNotFound || !strings.Contains(body, `"error"`) {
				t.Errorf("GET %s = %d %s, want 404 with a JSON error", p, code, body)
			}
		}
		if code, _, _ := getUI(t, base, "/ui/m/windows/servercore", false); code != http.StatusBadRequest {
			t.Errorf("GET a manifest page without tag or digest = %d, want 400", code)
		}
	})
	t.Run("API untouched", func(t *testing.T) {
		if code, _, body := getUI(t, base, "/v2/", false); code != 200 || strings.Contains(body, "<html") {
			t.Fatalf("GET /v2/ = %d %s", code, body)
		}
	})
}

func TestUIOff(t *testing.T) {
	r := fixture.NewRegistry(t, server.WithUI(false))
	if code, _, _ := getUI(t, r.URL, "/", false); code != http.StatusNotFound {
		t.Fatalf("GET / with the web view off = %d, want 404", code)
	}
}

func TestUIPagination(t *testing.T) {
	r := fixture.NewRegistry(t)
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	for i := range 5 {
		r.Push(t, fmt.Sprintf("repo%d", i), "t0", img)
	}
	for i := 1; i < 5; i++ {
		r.Push(t, "repo0", fmt.Sprintf("t%d", i), img)
	}
	type page struct {
		Repositories, Tags []string
		Next               string
	}
	walk := func(path string) (all []string, pages int) {
		last := ""
		for {
			p := path + "n=2"
			if last != "" {
				p += "&last=" + last
			}
			var pg page
			_, _, body := getUI(t, r.URL, p, true)
			if err := json.Unmarshal([]byte(body), &pg); err != nil {
				t.Fatal(err)
			}
			all = append(all, pg.Repositories...)
			all = append(all, pg.Tags...)
			pages++
			if last = pg.Next; last == "" || pages > 10 {
				return all, pages
			}
		}
	}
	if all, pages := walk("/?"); fmt.Sprint(all) != "[repo0 repo1 repo2 repo3 repo4]" || pages != 3 {
		t.Errorf("repositories two a page: %v in %d pages", all, pages)
	}
	if all, pages := walk("/ui/r/repo0?"); fmt.Sprint(all) != "[t0 t1 t2 t3 t4]" || pages != 3 {
		t.Errorf("tags two a page: %v in %d pages", all, pages)
	}
	_, _, body := getUI(t, r.URL, "/ui/r/repo0?n=2", false)
	wantContains(t, "first tags page", body, `rel="next" href="/ui/r/repo0?last=t1"`)
}

func TestUIRequiresLogin(t *testing.T) {
	file := htpasswdFile(t, "admin", "pw", bcrypt.MinCost)
	r := fixture.NewRegistry(t, server.WithHTPasswd(file))
	paths := []string{"/", "/ui/", "/ui/r/windows/servercore", "/ui/m/windows/servercore:ltsc"}
	for _, p := range paths {
		for _, asJSON := range []bool{false, true} {
			code, h, body := getUI(t, r.URL, p, asJSON)
			if code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic realm=") || strings.Contains(body, "servercore") {
				t.Errorf("GET %s (JSON %v) without login = %d %q %s, want 401 with a Basic challenge", p, asJSON, code, h.Get("WWW-Authenticate"), body)
			}
			if code, _, _ := getUI(t, r.URL, p, asJSON, "admin", "wrong"); code != http.StatusUnauthorized {
				t.Errorf("GET %s with a wrong password = %d, want 401", p, code)
			}
		}
	}
	// The stylesheet holds nothing of the registry's.
	if code, h, _ := getUI(t, r.URL, "/ui/static/style.css", false); code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/css") {
		t.Errorf("GET the stylesheet = %d %s, want 200 text/css", code, h.Get("Content-Type"))
	}
	if code, _, body := getUI(t, r.URL, "/", true, "admin", "pw"); code != 200 || !strings.Contains(body, `"repositories"`) {
		t.Errorf("GET / logged in = %d %s", code, body)
	}
}
