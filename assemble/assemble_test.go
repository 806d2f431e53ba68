package assemble

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadDigestFile(t *testing.T) {
	hex := strings.Repeat("0a", 32)
	utf16 := []byte{0xff, 0xfe}
	for _, c := range "sha256:" + hex + "\r\n" {
		utf16 = append(utf16, byte(c), 0)
	}
	cases := map[string][]byte{
		"plain":      []byte("sha256:" + hex),
		"newline":    []byte("sha256:" + hex + "\n"),
		"bare hex":   []byte(hex),
		"sha256sum":  []byte(hex + "  base.tar.gz\n"),
		"upper case": []byte("sha256:" + strings.ToUpper(hex)),
		"utf-8 bom":  append([]byte{0xef, 0xbb, 0xbf}, "sha256:"+hex...),
		"utf-16 bom": utf16,
	}
	dir := t.TempDir()
	for name, b := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".digest")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		h, err := readDigestFile(p)
		if err != nil || h.String() != "sha256:"+hex {
			t.Errorf("%s: %v, %v", name, h, err)
		}
	}
	for name, b := range map[string]string{"empty": "", "short": "sha256:abc", "md5": "md5:" + hex} {
		p := filepath.Join(dir, name+".digest")
		if err := os.WriteFile(p, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := readDigestFile(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v does not name the file", name, err)
		}
	}
}
