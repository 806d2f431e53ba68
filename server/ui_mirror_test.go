package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/mediatype"
	"github.com/ferry-dev/ferry/server"
)

// uiMirrorPage is what TestUIMirror reads of the web view's JSON.
type uiMirrorPage struct {
	Repositories []string
	Tags         []string
	MirrorOf     []struct{ Name, URL string }
	Upstream     json.RawMessage
	LastChecked  map[string]string
	Platforms    []struct {
		Cached               bool
		Layers, LayersCached int
	}
	Image struct {
		Layers []struct {
			Digest  string
			Foreign bool
			Blob    string
		}
	}
}

// mirrorUI fetches path from the mirror's web view as JSON (and as HTML,
// returned second), checking that neither names the upstream's
// credentials.
func mirrorUI(t *testing.T, base, path string, secrets ...string) (uiMirrorPage, string) {
	t.Helper()
	var page uiMirrorPage
	code, _, body := getUI(t, base, path, true)
	if err := json.Unmarshal([]byte(body), &page); code != http.StatusOK || err != nil {
		t.Fatalf("GET %s as JSON = %d %s (%v)", path, code, body, err)
	}
	code, _, html := getUI(t, base, path, false)
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d %s", path, code, html)
	}
	for _, s := range secrets {
		if strings.Contains(body, s) || strings.Contains(html, s) {
			t.Errorf("GET %s shows the upstream's credential %q", path, s)
		}
	}
	return page, html
}

// wantStored waits until the mirror at base has stored blob d, which it
// commits after its client has the last byte: a HEAD waits for that.
func wantStored(t *testing.T, base, repo string, d v1.Hash) {
	t.Helper()
	if code, _, _ := get(t, http.MethodHead, base, "/v2/"+repo+"/blobs/"+d.String()); code != http.StatusOK {
		t.Errorf("HEAD blob %s of %s: status %d", d, repo, code)
	}
}

// TestUIMirror: a mirror's web view shows which upstream each repository
// came from (name, URL without credentials, its name there), which tags
// are cached and when they were checked upstream, and which manifests
// and blobs are cached; with --proxy-foreign localize a cached foreign
// layer is "localized". Nothing is fetched upstream to render it.
func TestUIMirror(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	const user, pw = "puller", "s3cret-pw"
	m := startMirror(t, "", server.WithProxy(server.Upstream{Name: "mcr.microsoft.com", URL: e.Reg.URL, Username: user, Password: pw}),
		server.WithProxyForeignAllow(allowLoopback))
	local := "mcr.microsoft.com/" + fixture.Repo
	before := time.Now().Add(-time.Second)
	// Cache the index by tag, its first platform's manifest, and of that
	// image the ordinary layer and the first foreign one only.
	if code, _, _ := get(t, http.MethodGet, m.URL, "/v2/"+local+"/manifests/"+fixture.IndexTag); code != http.StatusOK {
		t.Fatalf("pull the index through the mirror: %d", code)
	}
	code, body, _ := get(t, http.MethodGet, m.URL, "/v2/"+local+"/manifests/"+e.Manifests[0].String())
	var mf struct {
		Layers []struct{ MediaType, Digest string }
	}
	if err := json.Unmarshal(body, &mf); code != http.StatusOK || err != nil || len(mf.Layers) != 3 {
		t.Fatalf("pull the first platform through the mirror: %d %s", code, body)
	}
	want := map[string]string{} // digest -> Blob
	foreignSeen := false
	for _, l := range mf.Layers {
		h, err := v1.NewHash(l.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if mediatype.IsForeign(l.MediaType) && foreignSeen {
			want[l.Digest] = "missing"
			continue
		}
		foreignSeen = foreignSeen || mediatype.IsForeign(l.MediaType)
		wantBlob(t, m.URL, local, h)
		wantStored(t, m.URL, local, h)
		want[l.Digest] = "cached"
	}
	upstreamGets := e.Reg.Count("", "")

	page, html := mirrorUI(t, m.URL, "/", user, pw)
	var origins map[string]struct{ Name, URL, Repository string }
	if err := json.Unmarshal(page.Upstream, &origins); err != nil || strings.Join(page.Repositories, " ") != local ||
		len(page.MirrorOf) != 1 || page.MirrorOf[0].Name != "mcr.microsoft.com" || page.MirrorOf[0].URL != e.Reg.URL ||
		origins[local].Name != "mcr.microsoft.com" || origins[local].URL != e.Reg.URL || origins[local].Repository != fixture.Repo {
		t.Errorf("repositories page: %+v (%v)", page, err)
	}
	wantContains(t, "repositories page", html, `id="mirror"`, `href="/ui/r/`+local+`"`, "from mcr.microsoft.com <code>"+e.Reg.URL+"</code>")

	page, html = mirrorUI(t, m.URL, "/ui/r/"+local, user, pw)
	checked, err := time.Parse(time.RFC3339, page.LastChecked[fixture.IndexTag])
	if strings.Join(page.Tags, " ") != fixture.IndexTag || err != nil || checked.Before(before.Truncate(time.Second)) || time.Since(checked) > time.Minute {
		t.Errorf("tags page: only the cached tag %s with its last check upstream: %+v (%v)", fixture.IndexTag, page, err)
	}
	wantContains(t, "tags page", html, `id="upstream"`, e.Reg.URL, "<code>"+fixture.Repo+"</code>", "checked upstream <time")

	page, html = mirrorUI(t, m.URL, "/ui/m/"+local+":"+fixture.IndexTag, user, pw)
	if p := page.Platforms; len(p) != 2 || !p[0].Cached || p[0].Layers != 3 || p[0].LayersCached != 2 || p[1].Cached {
		t.Errorf("index page: the first platform cached with 2 of 3 layers, the second not: %+v", p)
	}
	wantContains(t, "index page", html, `id="upstream"`, "2 of 3 layers", `<span class="blob-missing">missing</span>`)

	page, _ = mirrorUI(t, m.URL, "/ui/m/"+local+"@"+e.Manifests[0].String(), user, pw)
	for _, l := range page.Image.Layers {
		if l.Blob != want[l.Digest] {
			t.Errorf("image page: layer %s (foreign %v) is %q, want %q", l.Digest, l.Foreign, l.Blob, want[l.Digest])
		}
	}
	if n := e.Reg.Count("", ""); n != upstreamGets {
		t.Errorf("rendering the web view made %d requests upstream", n-upstreamGets)
	}

	// --proxy-foreign localize: the foreign layer held is served as an
	// ordinary one.
	lm := startMirror(t, "", server.WithProxy(server.Upstream{URL: e.Reg.URL}), server.WithProxyForeignAllow(allowLoopback), server.WithProxyLocalize(true))
	if code, _, _ := get(t, http.MethodGet, lm.URL, "/v2/"+fixture.Repo+"/manifests/"+e.Manifests[0].String()); code != http.StatusOK {
		t.Fatalf("pull the first platform through the localizing mirror: %d", code)
	}
	for _, l := range mf.Layers {
		h, _ := v1.NewHash(l.Digest)
		wantBlob(t, lm.URL, fixture.Repo, h)
		wantStored(t, lm.URL, fixture.Repo, h)
	}
	localName := strings.ReplaceAll(e.Reg.Host, ":", "_") + "/" + fixture.Repo
	code, _, served := get(t, http.MethodGet, lm.URL, "/v2/"+fixture.Repo+"/manifests/"+fixture.SingleTag)
	if code != http.StatusOK || served == e.SingleID.String() {
		t.Fatalf("the localizing mirror serves tag %s as %d %s", fixture.SingleTag, code, served)
	}
	var tagPage struct{ Digest, LocalizedAs string }
	if _, _, body := getUI(t, lm.URL, "/ui/m/"+localName+":"+fixture.SingleTag, true); json.Unmarshal([]byte(body), &tagPage) != nil ||
		tagPage.Digest != e.SingleID.String() || tagPage.LocalizedAs != served {
		t.Errorf("localizing mirror's tag page: upstream digest %s served as %s, want %s served as %s", tagPage.Digest, tagPage.LocalizedAs, e.SingleID, served)
	}
	_, _, html = getUI(t, lm.URL, "/ui/m/"+localName+":"+fixture.SingleTag, false)
	wantContains(t, "localizing mirror's tag page", html, `id="localized"`, `href="/ui/m/`+localName+`@`+served+`"`)
	if code, _, body := getUI(t, lm.URL, "/ui/m/"+localName+"@"+served, true); code != http.StatusOK || strings.Contains(body, `"foreign": true`) {
		t.Errorf("the localized manifest's page: %d %s", code, body)
	}
	page, _ = mirrorUI(t, lm.URL, "/ui/m/"+localName+"@"+e.Manifests[0].String())
	for _, l := range page.Image.Layers {
		if l.Foreign && l.Blob != "localized" || !l.Foreign && l.Blob != "cached" {
			t.Errorf("localizing mirror's image page: layer %s (foreign %v) is %q", l.Digest, l.Foreign, l.Blob)
		}
	}
}
