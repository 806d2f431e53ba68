package imagemod

import "testing"

// FuzzParseSpec feeds arbitrary YAML to the manifest-tool spec parser:
// errors, never panics; a spec it accepts names an image and entries.
func FuzzParseSpec(f *testing.F) {
	f.Add([]byte("image: reg/app:1\nmanifests:\n  - image: reg/app:1-ltsc2019\n    platform:\n      os: windows\n      architecture: amd64\n      os.version: 10.0.17763.1\n"))
	f.Add([]byte("image: x\ntags: [a, b]\nmanifests: []\n"))
	f.Add([]byte("{image: [1], manifests: {a: b}}\n&a [*a, *a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, _, err := ParseSpec(data)
		if err == nil && spec == nil {
			t.Fatal("nil spec without an error")
		}
	})
}
