package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/cli"
	"github.com/ferry-dev/ferry/platform"
	"github.com/ferry-dev/ferry/store/ocilayout"
)

// TestImage builds ferry's image from the linux archives of a release
// ($FERRY_RELEASE_DIST, CI's release run, or one built here), pushes it to
// an in-process ferry serve and checks: crane validate --remote passes;
// the index lists linux/amd64 and linux/arm64; ferry inspect shows the
// labels and entrypoint in each config; the serve's referrers API lists
// each platform's SBOM, the release's file byte for byte; a second build
// into an OCI layout gives the same index digest; and the layer holds
// /ferry, the CA bundle and /tmp, owned by 0:0 with the commit's time,
// and /ferry runs in a chroot of it (as root on amd64).
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a release of linux/amd64 and linux/arm64")
	}
	crane := lookCrane(t)
	dist := os.Getenv(distEnv)
	if dist == "" {
		dist = runRelease(t, imageTargets)
	}
	ctx := context.Background()
	host := startServe(t)
	ref := host + "/ferry:test"
	img, err := buildImage(ctx, imageOptions{dist: dist, push: ref, caCerts: "/etc/ssl/certs/ca-certificates.crt"})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"source", "version", "revision", "created"} {
		if img.labels["org.opencontainers.image."+k] == "" {
			t.Errorf("no %s label: %v", k, img.labels)
		}
	}
	if src := img.labels["org.opencontainers.image.source"]; src != "https://github.com/ferry-dev/ferry" {
		t.Errorf("source label %q", src)
	}

	if out, err := exec.Command(crane, "validate", "--remote", ref).CombinedOutput(); err != nil || !strings.Contains(string(out), "PASS") {
		t.Errorf("crane validate --remote %s: %v\n%s", ref, err, out)
	}

	var idx v1.IndexManifest
	if err := json.Unmarshal([]byte(ferry(t, "inspect", "--raw", ref)), &idx); err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, m := range idx.Manifests {
		platforms = append(platforms, platform.Format(m.Platform))
	}
	if idx.MediaType != types.OCIImageIndex || !slices.Equal(platforms, imageTargets) || idx.Annotations["org.opencontainers.image.revision"] != img.labels["org.opencontainers.image.revision"] {
		t.Errorf("index %s, platforms %v, annotations %v", idx.MediaType, platforms, idx.Annotations)
	}

	for _, target := range imageTargets {
		var cfg v1.ConfigFile
		if err := json.Unmarshal([]byte(ferry(t, "inspect", "--config", "--platform", target, ref)), &cfg); err != nil {
			t.Fatal(err)
		}
		for k, v := range img.labels {
			if cfg.Config.Labels[k] != v {
				t.Errorf("%s: label %s=%q, want %q", target, k, cfg.Config.Labels[k], v)
			}
		}
		if !slices.Equal(cfg.Config.Entrypoint, []string{"/ferry"}) || cfg.OS+"/"+cfg.Architecture != target ||
			cfg.Created.Format(time.RFC3339) != img.labels["org.opencontainers.image.created"] {
			t.Errorf("%s: entrypoint %q, platform %s/%s, created %s", target, cfg.Config.Entrypoint, cfg.OS, cfg.Architecture, cfg.Created)
		}
	}

	for i, p := range img.platforms {
		var refs v1.IndexManifest
		getJSON(t, "http://"+host+"/v2/ferry/referrers/"+p.Digest.String(), &refs)
		if len(refs.Manifests) != 1 || refs.Manifests[0].Digest != img.sboms[i].Digest || refs.Manifests[0].ArtifactType != sbomArtifactType {
			t.Fatalf("referrers of %s (%s): %+v, want the SBOM %s", p.Digest, platform.Format(p.Platform), refs.Manifests, img.sboms[i].Digest)
		}
		var m v1.Manifest
		getJSON(t, "http://"+host+"/v2/ferry/manifests/"+img.sboms[i].Digest.String(), &m)
		if m.Subject == nil || m.Subject.Digest != p.Digest || len(m.Layers) != 1 || m.Config.MediaType != types.OCIEmptyJSON {
			t.Fatalf("SBOM manifest %+v", m)
		}
		arch := p.Platform.Architecture
		files, err := filepath.Glob(filepath.Join(dist, "ferry_*_linux_"+arch+".sbom.cdx.json"))
		if err != nil || len(files) != 1 {
			t.Fatalf("the release's linux/%s SBOM: %v %v", arch, files, err)
		}
		want, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		if got := get(t, "http://"+host+"/v2/ferry/blobs/"+m.Layers[0].Digest.String()); !bytes.Equal(got, want) || !bytes.Contains(got, []byte("goarch="+arch)) {
			t.Errorf("linux/%s: the attached SBOM is not %s (%d bytes, want %d)", arch, files[0], len(got), len(want))
		}
	}

	// A registry that refuses the SBOMs gets no tag: they are attached
	// before the index is tagged.
	refusing := httptest.NewServer(refuseSBOMs(t, host))
	defer refusing.Close()
	if _, err := buildImage(ctx, imageOptions{dist: dist, push: strings.TrimPrefix(refusing.URL, "http://") + "/ferry:refused", caCerts: "/etc/ssl/certs/ca-certificates.crt"}); err == nil {
		t.Error("the build succeeded though the registry refused its SBOMs")
	}
	if resp, err := http.Head("http://" + host + "/v2/ferry/manifests/refused"); err != nil {
		t.Error(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusNotFound {
		t.Errorf("HEAD the tag of a build whose SBOMs were refused: %s, want 404 (no tag without its SBOMs)", resp.Status)
	}

	dir := filepath.Join(t.TempDir(), "layout")
	again, err := buildImage(ctx, imageOptions{dist: dist, oci: dir, caCerts: "/etc/ssl/certs/ca-certificates.crt"})
	if err != nil {
		t.Fatal(err)
	}
	if again.index.Digest != img.index.Digest || !slices.EqualFunc(again.sboms, img.sboms, func(a, b v1.Descriptor) bool { return a.Digest == b.Digest }) {
		t.Errorf("a second build wrote %s with SBOMs %v; the first %s with %v", again.index.Digest, again.sboms, img.index.Digest, img.sboms)
	}
	for i, p := range again.platforms {
		// The layout lists each SBOM, untagged, in index.json.
		refs, err := ocilayout.Open(dir, "", "").Referrers(ctx, p)
		if err != nil || len(refs) != 1 || refs[0].Digest != again.sboms[i].Digest || refs[0].ArtifactType != sbomArtifactType {
			t.Errorf("referrers of %s in the layout: %+v, %v; want the SBOM %s", p.Digest, refs, err, again.sboms[i].Digest)
		}
	}
	checkLayer(t, dir, img)
}

// refuseSBOMs forwards to the registry at host, but answers 400 to the
// push of a manifest with a subject (a referrer, such as an SBOM).
func refuseSBOMs(t *testing.T, host string) http.Handler {
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: host})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				t.Errorf("refuseSBOMs: %v", err)
			}
			if bytes.Contains(body, []byte(`"subject"`)) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"errors":[{"code":"MANIFEST_INVALID","message":"referrers refused by the test"}]}`)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		proxy.ServeHTTP(w, r)
	})
}

// checkLayer checks the linux/amd64 image's layer in the layout dir:
// its entries, sorted, owners, modes and times.
func checkLayer(t *testing.T, dir string, img *builtImage) {
	t.Helper()
	l := ocilayout.Open(dir, img.labels["org.opencontainers.image.version"], "")
	ctx := context.Background()
	raw, err := l.FetchManifest(ctx, img.platforms[0])
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil || len(m.Layers) != 1 {
		t.Fatalf("manifest %s: %v (%d layers)", img.platforms[0].Digest, err, len(m.Layers))
	}
	rc, err := l.FetchBlob(ctx, m.Layers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	gz, err := gzip.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	created, _ := time.Parse(time.RFC3339, img.labels["org.opencontainers.image.created"])
	var got []string
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, h.Name+" "+strconv.FormatInt(h.Mode, 8))
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(created) {
			t.Errorf("%s: owner %d:%d, mtime %s, want 0:0 and %s", h.Name, h.Uid, h.Gid, h.ModTime, created)
		}
	}
	want := []string{"etc/ 755", "etc/ssl/ 755", "etc/ssl/certs/ 755", "etc/ssl/certs/ca-certificates.crt 644", "ferry 755", "tmp/ 1777"}
	if !slices.Equal(got, want) {
		t.Errorf("layer entries %q, want %q", got, want)
	}

	// The layer is the whole file system: the entrypoint runs in it alone.
	if os.Geteuid() != 0 || runtime.GOARCH != "amd64" {
		t.Logf("not root on amd64: the image's /ferry not run in a chroot")
		return
	}
	rootfs := t.TempDir()
	blob := filepath.Join(dir, ocilayout.BlobName(m.Layers[0].Digest))
	if out, err := exec.Command("tar", "-xzf", blob, "-C", rootfs).CombinedOutput(); err != nil {
		t.Fatalf("tar -xzf %s: %v\n%s", blob, err, out)
	}
	out, err := exec.Command("chroot", rootfs, "/ferry", "version", "--json").Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) && strings.Contains(string(exit.Stderr), "Operation not permitted") {
		t.Logf("chroot not permitted here: the image's /ferry not run: %s", exit.Stderr)
		return
	}
	var info struct{ Version, Commit string }
	if err != nil || json.Unmarshal(out, &info) != nil || info.Commit != img.labels["org.opencontainers.image.revision"] {
		t.Errorf("chroot ROOTFS /ferry version --json: %v: %s", err, out)
	}
}

// lookCrane finds crane on PATH or in GOPATH/bin, where .ci/run installs
// it.
func lookCrane(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("crane"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "crane")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("crane not installed (.ci/run installs it)")
	return ""
}

// lockedBuffer is a bytes.Buffer safe to read while serve writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe runs ferry serve in process on loopback with a storage root
// in a temporary directory and returns its host:port; it stops when the
// test ends.
func startServe(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, stderr lockedBuffer
	root := cli.NewRootCmd(&out, &stderr)
	root.SetArgs([]string{"serve", "--addr", "127.0.0.1:0", "--root", filepath.Join(t.TempDir(), "root")})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	for range 500 {
		if url := strings.TrimSpace(out.String()); url != "" {
			return strings.TrimPrefix(url, "http://")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("serve printed no URL (stderr %q)", stderr.String())
	return ""
}

// ferry runs the ferry command in process and returns its stdout.
func ferry(t *testing.T, args ...string) string {
	t.Helper()
	var out, stderr bytes.Buffer
	root := cli.NewRootCmd(&out, &stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("ferry %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out.String()
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", string(types.OCIManifestSchema1)+","+string(types.OCIImageIndex))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v: %s", url, resp.Status, err, b)
	}
	return b
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	if err := json.Unmarshal(get(t, url), v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// TestImageRefusals: the image is built from checked release files only —
// a file that does not match SHA256SUMS or is not listed there, a missing platform, or neither
// or both of --oci and --push are refused before anything is written.
func TestImageRefusals(t *testing.T) {
	dist := t.TempDir()
	var names []string
	for _, arch := range []string{"amd64", "arm64"} {
		for _, ext := range []string{".tar.gz", ".sbom.cdx.json"} {
			n := "ferry_1.0.0_linux_" + arch + ext
			if err := os.WriteFile(filepath.Join(dist, n), []byte(n), 0o644); err != nil {
				t.Fatal(err)
			}
			names = append(names, n)
		}
	}
	if err := writeSums(dist, names); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "layout")
	ctx := context.Background()
	for _, c := range []struct {
		name string
		o    imageOptions
		edit func()
		want string
	}{
		{"no destination", imageOptions{dist: dist}, nil, "give one of --oci DIR and --push REF"},
		{"two destinations", imageOptions{dist: dist, oci: out, push: "localhost:5000/ferry:1"}, nil, "give one of --oci DIR and --push REF"},
		{"tampered", imageOptions{dist: dist, oci: out}, func() {
			os.WriteFile(filepath.Join(dist, "ferry_1.0.0_linux_arm64.sbom.cdx.json"), []byte("other"), 0o644)
		}, "ferry_1.0.0_linux_arm64.sbom.cdx.json: sha256"},
		{"missing", imageOptions{dist: dist, oci: out}, func() {
			os.Remove(filepath.Join(dist, "ferry_1.0.0_linux_arm64.tar.gz"))
		}, "want one linux/arm64 archive"},
		{"unlisted", imageOptions{dist: dist, oci: out}, func() {
			sums := filepath.Join(dist, "SHA256SUMS")
			raw, _ := os.ReadFile(sums)
			var keep []string
			for _, l := range strings.SplitAfter(string(raw), "\n") {
				if !strings.HasSuffix(l, "_amd64.sbom.cdx.json\n") {
					keep = append(keep, l)
				}
			}
			os.WriteFile(sums, []byte(strings.Join(keep, "")), 0o644)
		}, "ferry_1.0.0_linux_amd64.sbom.cdx.json is not listed in " + filepath.Join(dist, "SHA256SUMS")},
	} {
		if c.edit != nil {
			c.edit()
		}
		_, err := buildImage(ctx, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused build left %s: %v", out, err)
	}
}

// TestFailedAttachLeavesNoLayout: when the second platform's SBOM cannot
// be attached to an OCI layout the build created, the layout's index.json
// lists the first's, untagged, and nothing tagged, so closing the layout
// removes everything written, that index.json with no orphan entry
// included.
func TestFailedAttachLeavesNoLayout(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	sbom := filepath.Join(tmp, "ferry_1.0.0_linux_amd64.sbom.cdx.json")
	if err := os.WriteFile(sbom, []byte(`{"bomFormat":"CycloneDX"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	files := []platformFiles{{target: "linux/amd64", sbom: sbom}, {target: "linux/arm64", sbom: filepath.Join(tmp, "missing.sbom.cdx.json")}}
	subject := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}, Size: 100}
	dir := filepath.Join(tmp, "layout")
	dst := ocilayout.Open(dir, "1.0.0", "")
	if _, err := attachSBOMs(ctx, dst, files, []v1.Descriptor{subject, subject}, time.Unix(0, 0)); err == nil {
		t.Fatal("attached an SBOM that is not there")
	}
	if refs, err := ocilayout.Open(dir, "", "").Referrers(ctx, subject); err != nil || len(refs) != 1 || refs[0].ArtifactType != sbomArtifactType {
		t.Fatalf("the layout does not list the first SBOM before Close: %+v, %v", refs, err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed attach left %s: %v", dir, err)
	}
}
