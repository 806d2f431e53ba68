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

func TestSecrets(t *testing.T) {
	for in, want := range map[string]string{
		// A registry's redirect to S3, quoted by Go's client in its error.
		`Get "https://b.s3.amazonaws.com/docker/blobs/data?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20261207%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261207T000000Z&X-Amz-Expires=1200&X-Amz-Security-Token=FQoGZXIvYXdz&X-Amz-SignedHeaders=host&X-Amz-Signature=0123abcd": EOF`: `Get "https://b.s3.amazonaws.com/docker/blobs/data?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=xxxxx&X-Amz-Date=20261207T000000Z&X-Amz-Expires=1200&X-Amz-Security-Token=xxxxx&X-Amz-SignedHeaders=host&X-Amz-Signature=xxxxx": EOF`,
		// An Azure SAS, in a JSON log line ("&" escaped).
		`{"msg":"fetch https://a.blob.core.windows.net/c/l?sv=2020-08-04\u0026se=2026\u0026sig=AbC%2Bd%3D failed"}`: `{"msg":"fetch https://a.blob.core.windows.net/c/l?sv=2020-08-04\u0026se=2026\u0026sig=xxxxx failed"}`,
		`https://storage.googleapis.com/b/o?X-Goog-Credential=sa%40p&X-Goog-Signature=ff00`:                         `https://storage.googleapis.com/b/o?X-Goog-Credential=xxxxx&X-Goog-Signature=xxxxx`,
		`GET /token?access_token=abc&scope=repository:x:pull`:                                                       `GET /token?access_token=xxxxx&scope=repository:x:pull`,
		// What is not a credential stays.
		"https://go.microsoft.com/fwlink/?linkid=2000&clcid=0x409": "https://go.microsoft.com/fwlink/?linkid=2000&clcid=0x409",
		"no url here, signature=abc":                               "no url here, signature=abc",
		"https://example.com/x?design=1":                           "https://example.com/x?design=1",
	} {
		if got := Secrets(in); got != want {
			t.Errorf("Secrets(%q)\n = %q\nwant %q", in, got, want)
		}
	}
	if got := URL("https://u:pw@b.example/x?X-Amz-Signature=abc"); got != "https://u:xxxxx@b.example/x?X-Amz-Signature=xxxxx" {
		t.Errorf("URL hides the user part and the signature: %q", got)
	}
}
