package cli

// Content addressed by sha512 digests, from an OCI layout to registries and
// archives and back: what is printed is the digest the destination
// resolves (a registry stores a manifest pushed by tag under its sha256
// digest), and every copy verifies.

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sha512Layout writes an OCI layout whose blobs and index.json name
// everything by sha512 digests: an image tagged v1, or with index an
// index of it tagged v1. It returns the layout's directory and the sha256
// digest of the tagged manifest or index, as a registry stores it.
func sha512Layout(t *testing.T, index bool) (dir, stored string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "l512")
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha512"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`))
	put := func(b []byte) string {
		sum := sha512.Sum512(b)
		h := hex.EncodeToString(sum[:])
		mustWrite(t, filepath.Join(dir, "blobs", "sha512", h), b)
		return fmt.Sprintf(`"digest":"sha512:%s","size":%d`, h, len(b))
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("a layer known by sha512"))
	_ = zw.Close()
	diff := sha256.Sum256([]byte("a layer known by sha512"))
	cfg := fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%x"]},"config":{}}`, diff)
	manifest := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json",%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip",%s}]}`,
		put([]byte(cfg)), put(gz.Bytes())))
	top, mt := manifest, "application/vnd.oci.image.manifest.v1+json"
	if index {
		top = []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",%s,"platform":{"architecture":"amd64","os":"linux"}}]}`,
			put(manifest)))
		mt = "application/vnd.oci.image.index.v1+json"
	}
	mustWrite(t, filepath.Join(dir, "index.json"), []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":%q,%s,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}`,
		mt, put(top))))
	return dir, fmt.Sprintf("sha256:%x", sha256.Sum256(top))
}

// printedRef is the REF@DIGEST line a copy prints.
func printedRef(t *testing.T, out string) string {
	t.Helper()
	line := strings.TrimSpace(out)
	if strings.Count(line, "\n") > 0 || !strings.Contains(line, "@") {
		t.Fatalf("copy printed %q, want one REF@DIGEST line", out)
	}
	return line
}

func TestPushSHA512LayoutPrintsWhatTheRegistryResolves(t *testing.T) {
	img, imgStored := sha512Layout(t, false)
	idx, idxStored := sha512Layout(t, true)
	for _, what := range []string{"ferry serve", "reference registry"} {
		t.Run(what, func(t *testing.T) {
			var host string
			if what == "ferry serve" {
				host, _ = ferryServer(t, t.TempDir())
			} else {
				host = referenceRegistry(t, t.TempDir()) // skipped without the binary
			}
			for _, c := range []struct{ cmd, src string }{{"push", img}, {"copy", "oci:" + img + ":v1"}} {
				out, errOut, code := run(t, c.cmd, c.src, host+"/sha512/app:v1")
				if code != 0 {
					t.Fatalf("%s: exit %d: %s", c.cmd, code, errOut)
				}
				ref := printedRef(t, out)
				if want := host + "/sha512/app:v1@" + imgStored; ref != want {
					t.Errorf("%s printed %s, want %s (the digest the registry stores)", c.cmd, ref, want)
				}
				// The printed digest resolves and verifies.
				digest := ref[strings.LastIndex(ref, "@")+1:]
				if _, errOut, code := run(t, "verify", host+"/sha512/app@"+digest); code != 0 {
					t.Errorf("verify %s: exit %d: %s", digest, code, errOut)
				}
			}
			// An index naming its image by sha512: ferry serve takes the
			// image by that digest; the reference registry takes it by
			// its sha256 one but then cannot find it by the index's
			// sha512 entry, and the refusal names it.
			out, errOut, code := run(t, "push", idx, host+"/sha512/idx:v1")
			if what == "reference registry" {
				if code != 1 || !strings.Contains(errOut, "sha512:") {
					t.Errorf("push of a sha512 index: exit %d, %s; want a refusal naming the sha512 entry", code, errOut)
				}
				// The image went by its sha256 digest once the registry
				// refused its sha512 one.
				if _, errOut, code := run(t, "verify", host+"/sha512/idx@"+imgStored); code != 0 {
					t.Errorf("the index's image, pushed by sha256 after the sha512 refusal: exit %d: %s", code, errOut)
				}
				return
			}
			if code != 0 || printedRef(t, out) != host+"/sha512/idx:v1@"+idxStored {
				t.Errorf("push of a sha512 index: exit %d, printed %q: %s", code, out, errOut)
			}
			if _, errOut, code := run(t, "verify", "--deep", host+"/sha512/idx:v1"); code != 0 {
				t.Errorf("verify --deep of the sha512 index: exit %d: %s", code, errOut)
			}
		})
	}
}

func TestSHA512ThroughArchives(t *testing.T) {
	ferry, _ := ferryServer(t, t.TempDir())
	img, _ := sha512Layout(t, false)
	idx, _ := sha512Layout(t, true)
	tmp := t.TempDir()
	for _, dst := range []string{
		"docker-archive:" + filepath.Join(tmp, "d.tar") + ":sha512/app:v1",
		"oci-archive:" + filepath.Join(tmp, "o.tar") + ":v1",
	} {
		if _, errOut, code := run(t, "copy", "oci:"+img+":v1", dst); code != 0 {
			t.Fatalf("copy to %s: exit %d: %s", dst, code, errOut)
		}
	}
	if _, errOut, code := run(t, "copy", "oci:"+idx+":v1", "oci-archive:"+filepath.Join(tmp, "i.tar")+":v1"); code != 0 {
		t.Fatalf("copy of the index to an oci-archive: exit %d: %s", code, errOut)
	}
	for _, src := range []string{"d.tar", "o.tar", "i.tar"} {
		out, errOut, code := run(t, "push", filepath.Join(tmp, src), ferry+"/sha512/"+strings.TrimSuffix(src, ".tar")+":v1")
		if code != 0 {
			t.Fatalf("push %s: exit %d: %s", src, code, errOut)
		}
		ref := printedRef(t, out)
		if _, errOut, code := run(t, "verify", "--deep", ref); code != 0 {
			t.Errorf("verify --deep %s: exit %d: %s", ref, code, errOut)
		}
		// And back into a layout, by the printed digest.
		if _, errOut, code := run(t, "pull", ref, filepath.Join(tmp, "back-"+src)); code != 0 {
			t.Errorf("pull %s: exit %d: %s", ref, code, errOut)
		}
	}
}
