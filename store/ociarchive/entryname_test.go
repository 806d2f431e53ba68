package ociarchive

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckEntryName: names that could leave the archive's root on
// Windows or on Unix are refused with the name quoted; ordinary names are
// cleaned of a leading ./ and a trailing /.
func TestCheckEntryName(t *testing.T) {
	for _, bad := range []string{
		`..\..\evil.txt`, `C:\evil.txt`, `C:evil.txt`, `c:/evil.txt`, `\evil.txt`,
		`\\server\share\evil.txt`, `\\?\C:\evil.txt`, `blobs\sha256\x`, `a\..\..\b`,
		"../evil.txt", "/etc/evil", "a/../../b", "a/./b", "a//b", "..",
	} {
		_, err := CheckEntryName(bad)
		if !errors.Is(err, ErrUnsafePath) || !strings.Contains(err.Error(), `"`) {
			t.Errorf("CheckEntryName(%q) = %v, want ErrUnsafePath naming it", bad, err)
		}
	}
	for in, want := range map[string]string{
		"index.json": "index.json", "./index.json": "index.json", "blobs/": "blobs",
		"blobs/sha256/abc": "blobs/sha256/abc", "./": ".", ".": ".",
	} {
		if got, err := CheckEntryName(in); err != nil || got != want {
			t.Errorf("CheckEntryName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
