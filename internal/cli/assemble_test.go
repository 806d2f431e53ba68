package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

// loose is an image's parts as seed 001's user had them: files named
// anything, beside .digest files.
type loose struct {
	manifest, config string
	layers           []string // in manifest order; "" for a layer not written
	digests          []string // LAYER.digest for each written layer
}

// writeLoose writes img's manifest, config and layers into dir under the
// names seed 001 used (base.tar.gz, delta.tar.gz, ...), leaving out the
// layers whose index skip lists.
func writeLoose(t *testing.T, dir string, img v1.Image, skip ...int) loose {
	t.Helper()
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	l := loose{manifest: filepath.Join(dir, "delta.tar.gz.manifest.json"), config: filepath.Join(dir, "delta.tar.gz.config.json")}
	mustWrite(t, l.manifest, raw)
	mustWrite(t, l.config, cfg)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"base.tar.gz", "delta.tar.gz"}
	for i, layer := range layers {
		name := fmt.Sprintf("layer-%d.tgz", i)
		if i < len(names) {
			name = names[i]
		}
		if slices.Contains(skip, i) {
			l.layers = append(l.layers, "")
			continue
		}
		rc, err := layer.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		mustWrite(t, p, b)
		d, err := layer.Digest()
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, p+".digest", []byte(d.String()))
		l.layers = append(l.layers, p)
		l.digests = append(l.digests, p+".digest")
	}
	return l
}

func mustWrite(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// args returns assemble's flags for the files.
func (l loose) args() []string {
	a := []string{"assemble", "--manifest", l.manifest, "--config", l.config}
	for _, p := range l.layers {
		if p != "" {
			a = append(a, "--blob", p)
		}
	}
	for _, p := range l.digests {
		a = append(a, "--digest-file", p)
	}
	return a
}

// seedImages are seed 001's images: servercore:latest as pushed, and the
// patched image whose files arrive loose (same OS build line, new layers).
func seedImages(t *testing.T) (old, patched v1.Image) {
	urls := fixture.NewURLServer(t)
	old = urls.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.17763.5830", Layers: 2, Seed: 1})
	patched = urls.WindowsImage(t, fixture.ImageSpec{OSVersion: "10.0.17763.5936", Layers: 2, Seed: 2})
	return old, patched
}

// TestAssembleSeed001 is seed 001 with ferry: a registry holds
// servercore:latest; the new manifest, config, base and delta layers,
// named as they came, are assembled and pushed to the running registry;
// a pull of the result verifies every blob, and the old manifest is still
// there by digest.
func TestAssembleSeed001(t *testing.T) {
	reg := fixture.NewRegistry(t)
	old, patched := seedImages(t)
	oldID := reg.Push(t, "servercore", "latest", old)
	newID := digestOf(t, patched)
	l := writeLoose(t, t.TempDir(), patched)

	dst := reg.Ref("servercore", "latest")
	out := ferryOK(t, append(l.args(), "--verify-diff-ids", dst)...)
	if want := dst + "@" + newID.String(); !strings.HasSuffix(out, want) {
		t.Errorf("stdout %q, want last line %q", out, want)
	}
	checkPulled(t, dst, newID)
	if _, _, d := reg.Manifest(t, "servercore", oldID.String()); d != oldID {
		t.Errorf("old manifest by digest: %s, want %s", d, oldID)
	}
	_, ol := fixture.Layers(t, patched)
	for _, layer := range ol {
		if !reg.BlobDigestOK(t, "servercore", layer.Digest) {
			t.Errorf("layer %s not served intact", layer.Digest)
		}
	}
}

// checkPulled pulls ref into an OCI layout (every blob verified as it
// streams) and checks the digest, then verifies the registry deeply.
func checkPulled(t *testing.T, ref string, want v1.Hash) {
	t.Helper()
	layout := "oci:" + filepath.Join(t.TempDir(), "pulled") + ":v1"
	ferryOK(t, "copy", ref, layout)
	if got := ferryOK(t, "digest", layout); got != want.String() {
		t.Errorf("pulled digest %s, want %s", got, want)
	}
	ferryOK(t, "verify", "--deep", ref)
}

// TestAssembleForeign: a foreign base layer with no file is kept (the
// digest is the manifest file's), or fetched from its url with --foreign
// include; --ignore-extra skips a stray file and says so.
func TestAssembleForeign(t *testing.T) {
	reg := fixture.NewRegistry(t)
	urls := fixture.NewURLServer(t)
	img := urls.WindowsImage(t, fixture.ImageSpec{OSVersion: fixture.OSVersion1, ForeignLayers: 1, Layers: 1, Seed: 5})
	id := digestOf(t, img)
	dir := t.TempDir()
	l := writeLoose(t, dir, img, 0)
	fl, _ := fixture.Layers(t, img)

	ferryOK(t, append(l.args(), "--verify-diff-ids", reg.Ref("win", "kept"))...)
	if _, _, d := reg.Manifest(t, "win", "kept"); d != id {
		t.Errorf("digest %s, want %s", d, id)
	}
	if reg.HasBlob(t, "win", fl[0].Digest) {
		t.Error("foreign layer pushed with keep")
	}

	stray := filepath.Join(dir, "notes.txt")
	mustWrite(t, stray, []byte("not a layer"))
	out, stderr, code := run(t, append(l.args(), "--blob", stray, "--ignore-extra", "--foreign", "include", "--foreign-allow", allowLoopback, "dir:"+filepath.Join(dir, "out"))...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "ignored "+stray) {
		t.Errorf("stderr does not mention the ignored file: %s", stderr)
	}
	if !strings.HasSuffix(strings.TrimSpace(out), id.String()) {
		t.Errorf("stdout %q, want digest %s", out, id)
	}
	if _, err := os.Stat(filepath.Join(dir, "out", fl[0].Digest.Hex)); err != nil {
		t.Errorf("foreign layer not fetched with include: %v", err)
	}
}

// TestAssembleErrors: each bad input exits 1 naming the file or digest at
// fault, and nothing is written at the destination.
func TestAssembleErrors(t *testing.T) {
	reg := fixture.NewRegistry(t)
	_, img := seedImages(t)
	dir := t.TempDir()
	l := writeLoose(t, dir, img)
	_, ol := fixture.Layers(t, img)
	raw, _ := img.RawManifest()

	notJSON := filepath.Join(dir, "notjson.manifest.json")
	mustWrite(t, notJSON, []byte("HTTP/1.1 404 Not Found\n"))
	wrongSize := filepath.Join(dir, "wrongsize.manifest.json")
	mustWrite(t, wrongSize, bytes.Replace(raw, fmt.Appendf(nil, `"size":%d`, ol[1].Size), fmt.Appendf(nil, `"size":%d`, ol[1].Size+1), 1))
	index := filepath.Join(dir, "index.json")
	mustWrite(t, index, []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`))
	stray := filepath.Join(dir, "stray.bin")
	mustWrite(t, stray, []byte("stray"))
	unknownDigest := filepath.Join(dir, "other.digest")
	mustWrite(t, unknownDigest, []byte("sha256:"+strings.Repeat("ab", 32)+"\n"))
	// A delta.tar.gz whose .digest beside it states the base layer's digest.
	other := t.TempDir()
	delta, _ := os.ReadFile(l.layers[1])
	mustWrite(t, filepath.Join(other, "delta.tar.gz"), delta)
	mustWrite(t, filepath.Join(other, "delta.tar.gz.digest"), []byte(ol[0].Digest.String()))

	withManifest := func(m string) []string {
		a := l.args()
		a[2] = m
		return a
	}
	noDelta := l
	noDelta.layers = l.layers[:1]
	noDelta.digests = nil
	cases := []struct {
		name string
		args []string
		want []string // in stderr
	}{
		{"missing layer", noDelta.args(), []string{ol[1].Digest.String(), "no file matches it"}},
		{"extra file", append(l.args(), "--blob", stray), []string{stray, "matches no descriptor"}},
		{"size mismatch", withManifest(wrongSize), []string{l.layers[1], ol[1].Digest.String(), "size"}},
		{"not JSON", withManifest(notJSON), []string{notJSON, "not an image manifest"}},
		{"index", withManifest(index), []string{index, "is an index"}},
		{"config swapped", append([]string{"assemble", "--manifest", l.manifest, "--config", l.layers[0], "--blob", l.config}, "--blob", l.layers[1]), []string{l.layers[0], "--config"}},
		{"digest file unknown", append(l.args(), "--digest-file", unknownDigest), []string{unknownDigest, "does not reference"}},
		{"digest file beside", []string{"assemble", "--manifest", l.manifest, "--blob", l.config, "--blob", l.layers[0], "--blob", filepath.Join(other, "delta.tar.gz"), "--digest-file", filepath.Join(other, "delta.tar.gz.digest")}, []string{filepath.Join(other, "delta.tar.gz.digest"), ol[0].Digest.String(), ol[1].Digest.String()}},
		{"missing file", append(l.args(), "--blob", filepath.Join(dir, "nope.tar.gz")), []string{"nope.tar.gz"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, dst := range []string{"oci:" + filepath.Join(dir, "out-"+strings.ReplaceAll(tc.name, " ", "-")), reg.Ref("servercore", "latest")} {
				_, stderr, code := run(t, append(tc.args, dst)...)
				if code != 1 {
					t.Errorf("%s: exit %d, want 1: %s", dst, code, stderr)
				}
				for _, w := range tc.want {
					if !strings.Contains(stderr, w) {
						t.Errorf("%s: stderr does not mention %q: %s", dst, w, stderr)
					}
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "out-"+strings.ReplaceAll(tc.name, " ", "-"))); err == nil {
				t.Error("something was written at the oci: destination")
			}
			if reg.TagExists(t, "servercore", "latest") {
				t.Error("the registry destination got a tag")
			}
		})
	}
	// A layer that does not decompress to its diff_id, with --verify-diff-ids.
	swapped := writeLoose(t, t.TempDir(), img)
	cfg := map[string]any{}
	b, _ := os.ReadFile(swapped.config)
	_ = json.Unmarshal(b, &cfg)
	ids := cfg["rootfs"].(map[string]any)["diff_ids"].([]any)
	ids[0], ids[1] = ids[1], ids[0]
	b, _ = json.Marshal(cfg)
	mustWrite(t, swapped.config, b)
	// The manifest must name the new config: rewrite its digest and size.
	h, n, _ := v1.SHA256(bytes.NewReader(b))
	m, _ := img.Manifest()
	m.Config.Digest, m.Config.Size = h, n
	mb, _ := json.Marshal(m)
	mustWrite(t, swapped.manifest, mb)
	_, stderr, code := run(t, append(swapped.args(), "--verify-diff-ids", reg.Ref("servercore", "latest"))...)
	if code != 1 || !strings.Contains(stderr, "diff_id") || !strings.Contains(stderr, ol[0].Digest.String()) {
		t.Errorf("diff_id mismatch: exit %d: %s", code, stderr)
	}
}

// TestAssembleIntoRoot is seed 001 offline: the reference registry binary
// writes servercore:latest into its storage root and stops; ferry
// assembles the patched image into that root; the registry, started
// again on the root, serves it (a pull verifies every blob) and still
// serves the old manifest by digest.
func TestAssembleIntoRoot(t *testing.T) {
	bin := lookTool(t, "registry")
	root := t.TempDir()
	old, patched := seedImages(t)
	oldID, newID := digestOf(t, old), digestOf(t, patched)

	src := fixture.NewRegistry(t)
	src.Push(t, "servercore", "latest", old)
	host, stop := startReferenceRegistry(t, bin, root)
	ferryOK(t, "copy", src.Ref("servercore", "latest"), host+"/servercore:latest")
	stop()

	l := writeLoose(t, t.TempDir(), patched)
	out := ferryOK(t, append(l.args(), "--root", root, "servercore:latest")...)
	if want := "servercore:latest@" + newID.String(); !strings.HasSuffix(out, want) {
		t.Errorf("stdout %q, want last line ending %q", out, want)
	}

	host, _ = startReferenceRegistry(t, bin, root)
	checkPulled(t, host+"/servercore:latest", newID)
	if got := ferryOK(t, "digest", host+"/servercore@"+oldID.String()); got != oldID.String() {
		t.Errorf("old manifest by digest: %s, want %s", got, oldID)
	}
}
