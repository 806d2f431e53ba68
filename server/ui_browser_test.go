package server_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
	"github.com/ferry-dev/ferry/server"
)

// chromium returns the Chromium binary, skipping the test when there is
// none, unless FERRY_REQUIRE_BROWSER is set on Linux (.ci/run sets it:
// there the test must run).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("FERRY_REQUIRE_BROWSER") != "" && runtime.GOOS == "linux" {
		t.Fatal("FERRY_REQUIRE_BROWSER is set but chromium is not installed (apt-get install chromium)")
	}
	t.Skip("chromium is not installed (apt-get install chromium); the browser test needs it")
	return ""
}

// artifactDir is where tests leave files for a person to look at:
// $FERRY_ARTIFACTS when set, else a temporary directory.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("FERRY_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// TestUIInBrowser drives headless Chromium through the web view: from /
// to the Windows index with the keyboard alone, then to one platform's
// image, checking what the rendered pages show, that focus is visible and
// that the colours follow the system's light or dark setting (issue 21's
// acceptance test).
func TestUIInBrowser(t *testing.T) {
	exe := chromium(t)
	e := newUIEnv(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	ctx, cancelBrowser := chromedp.NewContext(ctx, chromedp.WithErrorf(t.Logf))
	defer cancelBrowser()

	step := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("browser: %s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("browser: text of %s: %v", sel, err)
		}
		return s
	}
	shot := func() []byte {
		t.Helper()
		b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
		if err != nil {
			t.Fatalf("browser: screenshot: %v", err)
		}
		return b
	}
	eval := func(js string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("browser: %s: %v", js, err)
		}
		return s
	}
	// follow reaches the link to href with the keyboard alone, pressing
	// Tab until it has focus, checking that focus moves through the
	// page's focusable elements in document order and is visibly drawn,
	// then presses Enter and waits for the next page's sel.
	follow := func(href, sel string) {
		t.Helper()
		const focused = `(e => e.getAttribute("href") || e.id || e.tagName)(document.activeElement)`
		order := eval(`[...document.querySelectorAll("a[href], input, button")].map(e => e.getAttribute("href") || e.id || e.tagName).join("\n")`)
		want := strings.Split(order, "\n")
		for i := 0; ; i++ {
			if i == len(want) {
				t.Fatalf("keyboard: %d Tabs did not reach the link to %s (focus order %s)", i, href, order)
			}
			step("press Tab", chromedp.KeyEvent(kb.Tab))
			if got := eval(focused); got != want[i] {
				t.Fatalf("keyboard: Tab %d focused %q, want %q, the next focusable element in document order", i+1, got, want[i])
			}
			if want[i] == href {
				break
			}
		}
		visible := eval(`(e => e.matches(":focus-visible") + " " + getComputedStyle(e).outlineStyle + " " + getComputedStyle(e).outlineWidth)(document.activeElement)`)
		if visible != "true solid 3px" {
			t.Errorf("keyboard: the focused link to %s is not drawn as focused (:focus-visible, outline style, width: %s)", href, visible)
		}
		step("press Enter on "+href, chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(chromedp.CSS(sel)))
	}
	step("open /", chromedp.Navigate(e.Reg.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`#repositories`)))
	// Nothing needs JavaScript: the pages have none, and the policy
	// would refuse any.
	if n := eval(`String(document.scripts.length)`); n != "0" {
		t.Errorf("the repository list has %s scripts, want none", n)
	}
	follow("/ui/r/"+fixture.Repo, `#tags`)
	follow("/ui/m/"+fixture.Repo+":"+fixture.IndexTag, `#platforms`)
	platforms, referrers, pull := text(`#platforms`), text(`#referrers`), text(`#pull`)
	indexShot := shot()
	follow("/ui/m/"+fixture.Repo+"@"+e.Manifests[1].String(), `#layers`)
	layers, osVersion := text(`#layers`), text(`#config .osversion`)
	imageShot := shot()
	// Light and dark follow the system setting.
	scheme := func(s string) string {
		t.Helper()
		step("prefer "+s, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: s}}})
			return err
		}))
		return eval(`getComputedStyle(document.body).backgroundColor + " " + getComputedStyle(document.body).color`)
	}
	if light, dark := scheme("light"), scheme("dark"); light != "rgb(255, 255, 255) rgb(27, 31, 35)" || dark != "rgb(13, 17, 23) rgb(230, 237, 243)" {
		t.Errorf("colours (background, text) light %q, dark %q: the page does not follow prefers-color-scheme", light, dark)
	}
	darkShot := shot()
	// A mirror's view names each repository's upstream and shows which
	// tags are cached.
	scheme("light")
	m := startMirror(t, "", server.WithProxy(server.Upstream{Name: "mcr.microsoft.com", URL: e.Reg.URL}))
	local := "mcr.microsoft.com/" + fixture.Repo
	if code, _, _ := get(t, http.MethodGet, m.URL, "/v2/"+local+"/manifests/"+fixture.IndexTag); code != http.StatusOK {
		t.Fatalf("pull through the mirror: %d", code)
	}
	step("open the mirror's /", chromedp.Navigate(m.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`#repositories`)))
	mirrorOf, repos := text(`#mirror`), text(`#repositories`)
	follow("/ui/r/"+local, `#tags`)
	origin, cached := text(`#upstream`), text(`#tags`)
	mirrorShot := shot()
	for _, c := range []struct{ what, text, want string }{
		{"platforms", platforms, "ltsc2019 · " + fixture.OSVersion1},
		{"platforms", platforms, "ltsc2022 · " + fixture.OSVersion2},
		{"referrers", referrers, sbomType},
		{"referrers", referrers, e.SBOM.Hex[:12]},
		{"pull box", pull, "docker pull " + e.Reg.Host + "/" + fixture.Repo + ":" + fixture.IndexTag},
		{"pull box", pull, "ferry copy " + e.Reg.Host + "/" + fixture.Repo + ":" + fixture.IndexTag},
		{"layers", layers, "foreign"},
		{"layers", layers, "missing"},
		{"layers", layers, "cached"},
		{"image os.version", osVersion, "ltsc2022 · " + fixture.OSVersion2},
		{"mirror's upstreams", mirrorOf, "mcr.microsoft.com " + e.Reg.URL},
		{"mirror's repositories", repos, local + " from mcr.microsoft.com " + e.Reg.URL},
		{"mirror's repository", origin, "Cached from upstream mcr.microsoft.com " + e.Reg.URL + ", where it is " + fixture.Repo},
		{"mirror's tags", cached, fixture.IndexTag + " checked upstream"},
	} {
		if !strings.Contains(c.text, c.want) {
			t.Errorf("rendered %s lacks %q:\n%s", c.what, c.want, c.text)
		}
	}
	dir := artifactDir(t)
	for name, b := range map[string][]byte{"webview-index.png": indexShot, "webview-image.png": imageShot, "webview-image-dark.png": darkShot, "webview-mirror.png": mirrorShot} {
		if len(b) == 0 {
			t.Errorf("screenshot %s is empty", name)
			continue
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
}
