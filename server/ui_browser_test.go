package server_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
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
// to the Windows index by clicking, then to one platform's image, checking
// what the rendered pages show (issue 21's acceptance test).
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
	step("open /", chromedp.Navigate(e.Reg.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`#repositories`)))
	step("click the repository", chromedp.Click(chromedp.CSS(`a[href="/ui/r/`+fixture.Repo+`"]`)), chromedp.WaitVisible(chromedp.CSS(`#tags`)))
	step("click the tag", chromedp.Click(chromedp.CSS(`a[href="/ui/m/`+fixture.Repo+`:`+fixture.IndexTag+`"]`)), chromedp.WaitVisible(chromedp.CSS(`#platforms`)))
	platforms, referrers, pull := text(`#platforms`), text(`#referrers`), text(`#pull`)
	indexShot := shot()
	step("click the second platform", chromedp.Click(chromedp.CSS(`a[href="/ui/m/`+fixture.Repo+`@`+e.Manifests[1].String()+`"]`)), chromedp.WaitVisible(chromedp.CSS(`#layers`)))
	layers, osVersion := text(`#layers`), text(`#config .osversion`)
	imageShot := shot()
	for _, c := range []struct{ what, text, want string }{
		{"platforms", platforms, fixture.OSVersion1},
		{"platforms", platforms, fixture.OSVersion2},
		{"referrers", referrers, sbomType},
		{"referrers", referrers, e.SBOM.Hex[:12]},
		{"pull box", pull, "docker pull " + e.Reg.Host + "/" + fixture.Repo + ":" + fixture.IndexTag},
		{"pull box", pull, "ferry copy " + e.Reg.Host + "/" + fixture.Repo + ":" + fixture.IndexTag},
		{"layers", layers, "foreign"},
		{"layers", layers, "missing"},
		{"layers", layers, "cached"},
		{"image os.version", osVersion, fixture.OSVersion2},
	} {
		if !strings.Contains(c.text, c.want) {
			t.Errorf("rendered %s lacks %q:\n%s", c.what, c.want, c.text)
		}
	}
	dir := artifactDir(t)
	for name, b := range map[string][]byte{"webview-index.png": indexShot, "webview-image.png": imageShot} {
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
