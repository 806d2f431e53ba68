package redact

import (
	"errors"
	"net/url"
	"testing"
)

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://mirror.example/x?linkid=1":       "https://mirror.example/x?linkid=1",
		"https://mirror.example/x@v1":             "https://mirror.example/x@v1",
		"https://u:secret@mirror.example/x":       "https://u:xxxxx@mirror.example/x",
		"https://u:secret@mirror.example:port/x":  "https://xxxxx@mirror.example:port/x",
		"https://u:sec/ret@mirror.example:port/x": "https://xxxxx@mirror.example:port/x",
		"https://u:sec%zzret@mirror.example/x@v1": "https://xxxxx@v1",
		"u:secret@mirror.example:5000":            "xxxxx@mirror.example:5000",
		"u:secret@mirror.example/x":               "xxxxx@mirror.example/x",
		"localhost:5000/app@sha256:abc":           "localhost:5000/app@sha256:abc",
		"app@sha256:abc":                          "app@sha256:abc",
		"app:v1@sha256:abc":                       "app:v1@sha256:abc",
		"oci:dir@sha256:abc":                      "oci:dir@sha256:abc",
		"u:secret@mirror.example/app:v1":          "xxxxx@mirror.example/app:v1",
		"u:secret@[::1]:5000/app":                 "xxxxx@[::1]:5000/app",
		"oci:/tmp/a@b:tag":                        "oci:/tmp/a@b:tag",
		"not a url %zz":                           "not a url %zz",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestParseProblem: url.Parse's detail is given unless the string holds
// a user part, where it may quote the password; the string itself never.
func TestParseProblem(t *testing.T) {
	for raw, want := range map[string]string{
		"https://mirror.example:port/x":          `it does not parse as a URL: invalid port ":port" after host`,
		"https://u:SECRET@mirror.example:port/x": "it does not parse as a URL",
		"https://u:SE%zzCRET@mirror.example/x":   "it does not parse as a URL",
	} {
		_, err := url.Parse(raw)
		if got := ParseProblem(raw, err); got != want {
			t.Errorf("ParseProblem(%q) = %q, want %q", raw, got, want)
		}
	}
	if got := ParseProblem("x", errors.New("not a *url.Error")); got != "it does not parse as a URL" {
		t.Errorf("ParseProblem of another error = %q", got)
	}
}
