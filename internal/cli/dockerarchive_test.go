package cli

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

// tarFiles returns the regular files of a tar and their bytes.
func tarFiles(t *testing.T, p string) map[string][]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = b
		}
	}
}

func manifestJSON(t *testing.T, files map[string][]byte) tarball.Manifest {
	t.Helper()
	var m tarball.Manifest
	if err := json.Unmarshal(files["manifest.json"], &m); err != nil || len(m) != 1 {
		t.Fatalf("manifest.json %q: %v", files["manifest.json"], err)
	}
	return m
}

// TestDockerArchiveForeignLayers pulls a Windows image to a docker-archive
// with include and with keep, checks what docker save's files say about
// the foreign layers, and pushes each archive back with the digest it had.
func TestDockerArchiveForeignLayers(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	cfg, err := e.Single.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	foreignLayers, ordinary := fixture.Layers(t, e.Single)
	for _, policy := range []string{"include", "keep"} {
		t.Run(policy, func(t *testing.T) {
			archive := filepath.Join(t.TempDir(), "servercore.tar")
			_, stderr, code := run(t, "copy", "--foreign", policy, "--foreign-allow", allowLoopback, e.Reg.Ref(fixture.Repo, fixture.SingleTag), "docker-archive:"+archive)
			if code != 0 {
				t.Fatalf("pull: exit %d: %s", code, stderr)
			}
			files := tarFiles(t, archive)
			m := manifestJSON(t, files)
			if len(m[0].RepoTags) != 1 || !strings.HasSuffix(m[0].RepoTags[0], "/"+fixture.Repo+":"+fixture.SingleTag) {
				t.Errorf("RepoTags %v, want the source's reference", m[0].RepoTags)
			}
			if len(m[0].LayerSources) != len(foreignLayers) {
				t.Fatalf("LayerSources %v, want %d foreign layers", m[0].LayerSources, len(foreignLayers))
			}
			for i, l := range foreignLayers {
				src, ok := m[0].LayerSources[cfg.RootFS.DiffIDs[i]]
				if !ok || src.Digest != l.Digest || len(src.URLs) == 0 || src.MediaType != l.MediaType {
					t.Errorf("LayerSources[%s] = %+v, want the foreign descriptor %s with urls", cfg.RootFS.DiffIDs[i], src, l.Digest)
				}
				_, stored := files["blobs/sha256/"+l.Digest.Hex]
				if stored != (policy == "include") {
					t.Errorf("%s: foreign layer file stored=%v with %s", l.Digest, stored, policy)
				}
			}
			for _, l := range ordinary {
				if _, ok := files["blobs/sha256/"+l.Digest.Hex]; !ok {
					t.Errorf("ordinary layer %s not in the archive", l.Digest)
				}
			}
			if !bytes.Contains(files["repositories"], []byte(fixture.SingleTag)) {
				t.Errorf("repositories = %q", files["repositories"])
			}

			// Back into a registry: same digest, blobs verified.
			dst := fixture.NewRegistry(t)
			if _, stderr, code := run(t, "copy", "--foreign", policy, "docker-archive:"+archive, dst.Ref("back", "v1")); code != 0 {
				t.Fatalf("push: exit %d: %s", code, stderr)
			}
			if _, _, d := dst.Manifest(t, "back", "v1"); d != e.SingleID {
				t.Errorf("digest %s after the round trip, want %s", d, e.SingleID)
			}
			for _, l := range ordinary {
				if !dst.BlobDigestOK(t, "back", l.Digest) {
					t.Errorf("blob %s missing after the round trip", l.Digest)
				}
			}
			for _, l := range foreignLayers {
				if dst.HasBlob(t, "back", l.Digest) != (policy == "include") {
					t.Errorf("foreign blob %s in the registry: %v with %s", l.Digest, !(policy == "include"), policy)
				}
			}
			// localize from the archive (keep: the bytes come from the urls).
			if _, stderr, code := run(t, "copy", "--foreign", "localize", "--foreign-allow", allowLoopback, "docker-archive:"+archive, dst.Ref("loc", "v1")); code != 0 {
				t.Fatalf("localize: exit %d: %s", code, stderr)
			}
			raw, _, _ := dst.Manifest(t, "loc", "v1")
			if bytes.Contains(raw, []byte("foreign")) {
				t.Errorf("localized manifest still has foreign layers: %s", raw)
			}
		})
	}
}

func TestDockerArchiveRefusesIndexWithoutPlatform(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	dir := t.TempDir()
	archive := filepath.Join(dir, "both.tar")
	_, stderr, code := run(t, "copy", "--foreign-allow", allowLoopback, e.Reg.Ref(fixture.Repo, fixture.IndexTag), "docker-archive:"+archive)
	if code != 1 || !strings.Contains(stderr, "--platform") || !strings.Contains(stderr, fixture.OSVersion2) {
		t.Fatalf("exit %d, want 1 naming the platforms and --platform: %s", code, stderr)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("a refused copy left %v", left)
	}
	if e.URLs.Requests("/fwlink") != 0 {
		t.Errorf("a refused copy fetched %d foreign layers first", e.URLs.Requests("/fwlink"))
	}
	_, stderr, code = run(t, "copy", "--platform", "ltsc2022", "--foreign-allow", allowLoopback, e.Reg.Ref(fixture.Repo, fixture.IndexTag), "docker-archive:"+archive+":win:ltsc2022")
	if code != 0 {
		t.Fatalf("with --platform: exit %d: %s", code, stderr)
	}
	if out, _, code := run(t, "digest", "docker-archive:"+archive+":docker.io/library/win:ltsc2022"); code != 0 || strings.TrimSpace(out) != e.Manifests[1].String() {
		t.Errorf("digest %q (exit %d), want %s", out, code, e.Manifests[1])
	}
}

// classicArchive writes an archive as docker save before Docker 25 does:
// <id>/layer.tar (uncompressed), <hex>.json config, manifest.json,
// repositories, and a symbolic link for a repeated layer.
func classicArchive(t *testing.T, p string, layers [][]byte, extra func(tw *tar.Writer)) (cfgDigest v1.Hash, diffIDs []v1.Hash) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	add := func(name string, b []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	var files []string
	for i, l := range layers {
		sum := sha256.Sum256(l)
		diffIDs = append(diffIDs, v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])})
		id := strings.Repeat(string(rune('a'+i)), 64)
		if i > 0 && bytes.Equal(l, layers[0]) {
			tw.WriteHeader(&tar.Header{Name: id + "/layer.tar", Typeflag: tar.TypeSymlink, Linkname: "../" + strings.Repeat("a", 64) + "/layer.tar"})
		} else {
			add(id+"/layer.tar", l)
		}
		files = append(files, id+"/layer.tar")
	}
	cfg, _ := json.Marshal(v1.ConfigFile{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763.1", RootFS: v1.RootFS{Type: "layers", DiffIDs: diffIDs}})
	sum := sha256.Sum256(cfg)
	cfgDigest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	add(cfgDigest.Hex+".json", cfg)
	mj, _ := json.Marshal(tarball.Manifest{{Config: cfgDigest.Hex + ".json", RepoTags: []string{"app:1"}, Layers: files}})
	add("manifest.json", mj)
	add("repositories", []byte(`{"app":{"1":"`+strings.Repeat("a", 64)+`"}}`))
	if extra != nil {
		extra(tw)
	}
	tw.Close()
	f.Close()
	return cfgDigest, diffIDs
}

func tarOf(t *testing.T, files ...string) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range files {
		tw.WriteHeader(&tar.Header{Name: f, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f))})
		tw.Write([]byte(f))
	}
	tw.Close()
	return b.Bytes()
}

// TestDockerArchiveClassic reads an archive in the pre-25 layout with
// uncompressed layers and a symbolic link, pushes it, and checks the image
// the registry holds: the same config, uncompressed layers whose digests
// are the diff_ids.
func TestDockerArchiveClassic(t *testing.T) {
	p := filepath.Join(t.TempDir(), "old.tar")
	base := tarOf(t, "Files/a.txt")
	cfgDigest, diffIDs := classicArchive(t, p, [][]byte{base, tarOf(t, "Files/b.txt"), base}, nil)
	dst := fixture.NewRegistry(t)
	if _, stderr, code := run(t, "copy", "docker-archive:"+p, dst.Ref("app", "1")); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	raw, _, _ := dst.Manifest(t, "app", "1")
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.Digest != cfgDigest || len(m.Layers) != 3 {
		t.Fatalf("manifest %s", raw)
	}
	for i, l := range m.Layers {
		if l.Digest != diffIDs[i] || l.MediaType != types.DockerUncompressedLayer || !dst.BlobDigestOK(t, "app", l.Digest) {
			t.Errorf("layer %d: %+v, want the uncompressed layer %s stored", i, l, diffIDs[i])
		}
	}
	// Naming the image by its RepoTags, in any normal form.
	if _, stderr, code := run(t, "inspect", "docker-archive:"+p+":docker.io/library/app:1"); code != 0 {
		t.Errorf("inspect by tag: exit %d: %s", code, stderr)
	}
	if _, stderr, code := run(t, "inspect", "docker-archive:"+p+":app:2"); code != 1 || !strings.Contains(stderr, "app:1") {
		t.Errorf("unknown tag: exit %d, want 1 listing app:1: %s", code, stderr)
	}
}

// TestDockerArchiveWindowsSave reads what docker save writes on Windows
// for an image on a foreign base: the base layer's tar uncompressed, its
// descriptor in LayerSources. The foreign descriptor is kept; with include
// its bytes come from the urls, since the archive's tar is not the blob.
func TestDockerArchiveWindowsSave(t *testing.T) {
	urls := fixture.NewURLServer(t)
	img := urls.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.17763.1", ForeignLayers: 1, Layers: 1, Seed: 9})
	cfgRaw, _ := img.RawConfigFile()
	cfg, _ := img.ConfigFile()
	fl, ol := fixture.Layers(t, img)
	layers, _ := img.Layers()
	p := filepath.Join(t.TempDir(), "win.tar")
	f, _ := os.Create(p)
	tw := tar.NewWriter(f)
	add := func(name string, r io.Reader, n int64) {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: n})
		io.Copy(tw, r)
	}
	var files []string
	for i, l := range layers {
		u, _ := l.Uncompressed()
		b, _ := io.ReadAll(u)
		name := cfg.RootFS.DiffIDs[i].Hex + "/layer.tar"
		add(name, bytes.NewReader(b), int64(len(b)))
		files = append(files, name)
	}
	cfgDigest, _ := img.ConfigName()
	add(cfgDigest.Hex+".json", bytes.NewReader(cfgRaw), int64(len(cfgRaw)))
	mj, _ := json.Marshal(tarball.Manifest{{Config: cfgDigest.Hex + ".json", RepoTags: []string{"win:1"}, Layers: files,
		LayerSources: map[v1.Hash]v1.Descriptor{cfg.RootFS.DiffIDs[0]: fl[0]}}})
	add("manifest.json", bytes.NewReader(mj), int64(len(mj)))
	tw.Close()
	f.Close()

	dst := fixture.NewRegistry(t)
	if _, stderr, code := run(t, "copy", "--foreign", "keep", "docker-archive:"+p, dst.Ref("win", "keep")); code != 0 {
		t.Fatalf("keep: exit %d: %s", code, stderr)
	}
	raw, _, _ := dst.Manifest(t, "win", "keep")
	m, _ := v1.ParseManifest(bytes.NewReader(raw))
	if m.Layers[0].Digest != fl[0].Digest || len(m.Layers[0].URLs) == 0 || m.Layers[1].Digest != cfg.RootFS.DiffIDs[1] {
		t.Errorf("manifest %s: want the foreign descriptor then the uncompressed layer", raw)
	}
	if dst.HasBlob(t, "win", fl[0].Digest) {
		t.Error("keep pushed the foreign blob")
	}
	if _, stderr, code := run(t, "copy", "--foreign", "include", "--foreign-allow", allowLoopback, "docker-archive:"+p, dst.Ref("win", "include")); code != 0 {
		t.Fatalf("include: exit %d: %s", code, stderr)
	}
	if !dst.BlobDigestOK(t, "win", fl[0].Digest) || urls.Requests("/fwlink") == 0 {
		t.Errorf("include did not fetch the foreign blob from its urls")
	}
	_ = ol
}

// TestDockerArchiveBadInput covers archives that must fail with the file
// or digest named, and never leave a tag behind.
func TestDockerArchiveBadInput(t *testing.T) {
	dir := t.TempDir()
	dst := fixture.NewRegistry(t)
	noManifest := filepath.Join(dir, "nomanifest.tar")
	writeTar(t, noManifest, "oci-layout", "index.json")
	malformed := filepath.Join(dir, "malformed.tar")
	writeTar(t, malformed, "manifest.json")
	os.WriteFile(malformed, bytes.Replace(mustRead(t, malformed), []byte("{}"), []byte("{]"), 1), 0o644)
	corrupt := filepath.Join(dir, "corrupt.tar")
	classicArchive(t, corrupt, [][]byte{tarOf(t, "Files/x")}, nil)
	b := mustRead(t, corrupt)
	i := bytes.Index(b, []byte("Files/x"))
	b[i+512] ^= 0xff // inside the layer's content, past its own tar header
	os.WriteFile(corrupt, b, 0o644)
	twoImages := filepath.Join(dir, "two.tar")
	writeDockerTar(t, twoImages, `[{"Config":"c.json","RepoTags":["a:1"],"Layers":[]},{"Config":"c.json","RepoTags":["b:2"],"Layers":[]}]`)
	escape := filepath.Join(dir, "escape.tar")
	writeDockerTar(t, escape, `[{"Config":"../../etc/passwd","RepoTags":["a:1"],"Layers":[]}]`)

	for _, c := range []struct {
		name, file, want string
	}{
		{"no manifest.json", noManifest, "oci-archive:"},
		{"malformed manifest.json", malformed, "manifest.json: malformed"},
		{"corrupt layer", corrupt, "sha256:"},
		{"two images, none named", twoImages, "a:1, b:2"},
		{"config outside the archive", escape, "unsafe path"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, code := run(t, "copy", "docker-archive:"+c.file, dst.Ref("bad", "x"))
			t.Log(stderr)
			if code != 1 || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, want 1 with %q: %s", code, c.want, stderr)
			}
			if dst.TagExists(t, "bad", "x") {
				t.Error("a failed copy left a tag")
			}
		})
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeDockerTar(t *testing.T, p, manifest string) {
	f, _ := os.Create(p)
	tw := tar.NewWriter(f)
	for _, e := range []struct{ n, b string }{{"c.json", `{"rootfs":{"type":"layers","diff_ids":[]}}`}, {"manifest.json", manifest}} {
		tw.WriteHeader(&tar.Header{Name: e.n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(e.b))})
		tw.Write([]byte(e.b))
	}
	tw.Close()
	f.Close()
}

// TestSkopeoAndDockerArchive: skopeo inspects and copies a docker-archive
// ferry wrote, and ferry reads the docker-archive skopeo writes.
func TestSkopeoAndDockerArchive(t *testing.T) {
	skopeo := needSkopeo(t)
	reg := fixture.NewRegistry(t)
	urls := fixture.NewURLServer(t)
	img := urls.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.20348.1", ForeignLayers: 1, Layers: 2, Seed: 5})
	reg.Push(t, "win", "v1", img)
	cfgDigest, _ := img.ConfigName()
	dir := t.TempDir()
	ours := filepath.Join(dir, "ferry.tar")
	if _, stderr, code := run(t, "copy", "--foreign-allow", allowLoopback, reg.Ref("win", "v1"), "docker-archive:"+ours+":win:v1"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	out, err := exec.Command(skopeo, "inspect", "--config", "docker-archive:"+ours).Output()
	if err != nil {
		t.Fatalf("skopeo inspect docker-archive: %v %s", err, stderrOf(err))
	}
	sum := sha256.Sum256(out)
	if hex.EncodeToString(sum[:]) != cfgDigest.Hex {
		// skopeo may reformat the config; compare what matters.
		if !bytes.Contains(out, []byte("10.0.20348.1")) {
			t.Errorf("skopeo read config %s", out)
		}
	}
	theirs := filepath.Join(dir, "skopeo.tar")
	if b, err := exec.Command(skopeo, "copy", "docker-archive:"+ours, "docker-archive:"+theirs+":win:v2").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, b)
	}
	dst := fixture.NewRegistry(t)
	if _, stderr, code := run(t, "copy", "docker-archive:"+theirs, dst.Ref("from-skopeo", "v2")); code != 0 {
		t.Fatalf("ferry reading skopeo's archive: exit %d: %s", code, stderr)
	}
	raw, _, _ := dst.Manifest(t, "from-skopeo", "v2")
	m, _ := v1.ParseManifest(bytes.NewReader(raw))
	cfg, _ := img.ConfigFile()
	if len(m.Layers) != len(cfg.RootFS.DiffIDs) {
		t.Fatalf("manifest %s", raw)
	}
	for i, l := range m.Layers {
		if l.MediaType == types.DockerUncompressedLayer && l.Digest != cfg.RootFS.DiffIDs[i] {
			t.Errorf("layer %d: %s, want diff_id %s", i, l.Digest, cfg.RootFS.DiffIDs[i])
		}
		if !dst.BlobDigestOK(t, "from-skopeo", l.Digest) && len(l.URLs) == 0 {
			t.Errorf("layer %s missing", l.Digest)
		}
	}
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}
