package cli

import (
	"bytes"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/internal/testkit/fixture"
)

// TestLocalRoundTrips is the local-formats acceptance table: registry ->
// FORMAT -> registry for every local format and foreign policy. keep and
// include preserve the manifest digest and every blob (include carries
// the foreign bytes, keep leaves them at their urls); localize leaves no
// foreign descriptor and every layer stored.
func TestLocalRoundTrips(t *testing.T) {
	e := fixture.MicrosoftLike(t)
	formats := []struct {
		prefix, file string
		args         []string // docker-archive holds one image
	}{
		{"oci:", "layout:ltsc", nil},
		{"oci-archive:", "a.tar", nil},
		{"docker-archive:", "d.tar", []string{"--platform", "ltsc2022"}},
		{"dir:", "dir", []string{"--platform", "ltsc2022"}},
	}
	for _, f := range formats {
		for _, policy := range []string{"keep", "include", "localize"} {
			t.Run(f.prefix+policy, func(t *testing.T) {
				want, ref := e.Index, fixture.IndexTag
				if f.args != nil {
					want = e.Manifests[1]
				}
				loc := f.prefix + filepath.Join(t.TempDir(), f.file)
				args := append([]string{"copy", "--foreign", policy, "--foreign-allow", allowLoopback}, f.args...)
				if _, stderr, code := run(t, append(args, e.Reg.Ref(fixture.Repo, ref), loc)...); code != 0 {
					t.Fatalf("out: exit %d: %s", code, stderr)
				}
				before := e.URLs.Requests("/fwlink")
				dst := fixture.NewRegistry(t)
				if _, stderr, code := run(t, "copy", "--foreign", policy, loc, dst.Ref("back", "v1")); code != 0 {
					t.Fatalf("back: exit %d: %s", code, stderr)
				}
				if e.URLs.Requests("/fwlink") != before {
					t.Errorf("the way back went to the foreign urls: the %s copy should carry or keep them", policy)
				}
				raw, _, d := dst.Manifest(t, "back", "v1")
				if policy != "localize" && d != want {
					t.Errorf("digest %s, want %s", d, want)
				}
				var manifests [][]byte
				if f.args == nil {
					idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
					if err != nil {
						t.Fatal(err)
					}
					for _, m := range idx.Manifests {
						r, _, _ := dst.Manifest(t, "back", m.Digest.String())
						manifests = append(manifests, r)
					}
				} else {
					manifests = [][]byte{raw}
				}
				for _, r := range manifests {
					m, err := v1.ParseManifest(bytes.NewReader(r))
					if err != nil {
						t.Fatal(err)
					}
					for _, l := range m.Layers {
						isForeign := len(l.URLs) > 0
						if policy == "localize" && isForeign {
							t.Errorf("localize left foreign layer %s", l.Digest)
						}
						stored := dst.BlobDigestOK(t, "back", l.Digest)
						if wantStored := !(policy == "keep" && isForeign); stored != wantStored {
							t.Errorf("%s layer %s (foreign %v): stored %v, want %v", policy, l.Digest, isForeign, stored, wantStored)
						}
					}
				}
			})
		}
	}
}
