package foreign

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestCheckAddr(t *testing.T) {
	p, err := NewPolicy(nil)
	if err != nil {
		t.Fatal(err)
	}
	for addr, class := range map[string]string{
		"127.0.0.1:80":          "loopback",
		"127.9.9.9:443":         "loopback",
		"[::1]:443":             "loopback",
		"[::ffff:127.0.0.1]:80": "loopback",
		"10.1.2.3:80":           "private",
		"172.16.0.1:80":         "private",
		"172.31.255.255:80":     "private",
		"192.168.1.1:80":        "private",
		"[fd00::1]:80":          "private",
		"169.254.169.254:80":    "link-local",
		"[fe80::1%eth0]:80":     "link-local",
		"0.0.0.0:80":            "unspecified",
		"0.1.2.3:80":            "unspecified",
		"[::]:80":               "unspecified",
		"100.64.0.1:80":         "CGNAT",
		"100.127.255.255:80":    "CGNAT",
		"224.0.0.1:80":          "multicast",
		"[ff02::1]:80":          "multicast",
		"255.255.255.255:80":    "multicast",
		"10.0.0.1":              "private", // no port
		"8.8.8.8:443":           "",
		"[2606:4700::1111]:443": "",
		"100.128.0.1:80":        "",
		"172.32.0.1:80":         "",
		"203.0.113.7:80":        "",
	} {
		err := p.CheckAddr(context.Background(), addr)
		switch {
		case class == "" && err != nil:
			t.Errorf("%s refused: %v", addr, err)
		case class != "" && (!errors.Is(err, ErrURLRefused) || !strings.Contains(err.Error(), class)):
			t.Errorf("%s: got %v, want a refusal naming %s", addr, err, class)
		}
	}
	if err := p.CheckAddr(context.Background(), "example.com:80"); !errors.Is(err, ErrURLRefused) {
		t.Errorf("a name instead of an address: %v", err)
	}
}

func TestCheckAddrWithURL(t *testing.T) {
	p, err := NewPolicy([]string{`^https://mirror\.corp/`})
	if err != nil {
		t.Fatal(err)
	}
	allowed, _ := url.Parse("https://mirror.corp/ms/layer")
	other, _ := url.Parse("https://metadata.example/latest")
	if err := p.CheckAddr(p.WithURL(context.Background(), allowed), "10.0.0.5:443"); err != nil {
		t.Errorf("allowed URL: %v", err)
	}
	err = p.CheckAddr(p.WithURL(context.Background(), other), "169.254.169.254:443")
	if !errors.Is(err, ErrURLRefused) || !strings.Contains(err.Error(), other.String()) ||
		!strings.Contains(err.Error(), "link-local") || !strings.Contains(err.Error(), "--foreign-allow") {
		t.Errorf("other URL: %v", err)
	}
	var nilPolicy *Policy
	if err := nilPolicy.CheckAddr(context.Background(), "127.0.0.1:1"); !errors.Is(err, ErrURLRefused) {
		t.Errorf("nil policy: %v", err)
	}
}

func TestCheckURL(t *testing.T) {
	p, err := NewPolicy([]string{`^http://10\.0\.0\.5/`, `.*`})
	if err != nil {
		t.Fatal(err)
	}
	strict, _ := NewPolicy(nil)
	mirror, _ := NewPolicy([]string{`^http://10\.0\.0\.5/`})
	for _, tc := range []struct {
		url    string
		policy *Policy
		want   string // "" for no error, else a word of the refusal
	}{
		{"https://go.microsoft.com/fwlink?linkid=1", strict, ""},
		{"http://mcr.microsoft.com/x", strict, ""},
		{"http://localhost/x", strict, ""}, // a name: judged when dialed
		{"file:///etc/passwd", strict, "file"},
		{"file:///etc/passwd", p, "file"}, // no pattern allows a scheme
		{"ftp://ftp.example/x", p, "ftp"},
		{"gopher://x/", strict, "gopher"},
		{"http:///nohost", strict, "no host"},
		{"http://127.0.0.1:8080/x", strict, "loopback"},
		{"http://[::1]/x", strict, "loopback"},
		{"http://10.0.0.5/x", strict, "private"},
		{"http://10.0.0.5/x", mirror, ""},
		{"http://10.0.0.6/x", mirror, "private"},
		{"http://169.254.169.254/latest/meta-data", strict, "link-local"},
		{"http://user:secret@10.0.0.9/x", strict, "user part"},
	} {
		checkURLCase(t, tc.url, tc.policy, tc.want)
	}
}

// checkURLCase checks policy's verdict on rawURL: allowed when want is
// "", else refused naming want and the URL, never its password.
func checkURLCase(t *testing.T, rawURL string, policy *Policy, want string) *url.URL {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	err = policy.CheckURL(u)
	switch {
	case want == "" && err != nil:
		t.Errorf("%s refused: %v", rawURL, err)
	case want != "" && (!errors.Is(err, ErrURLRefused) || !strings.Contains(err.Error(), want)):
		t.Errorf("%s: got %v, want a refusal naming %q", rawURL, err, want)
	case err != nil && strings.Contains(err.Error(), "secret"):
		t.Errorf("%s: the error shows the password: %v", rawURL, err)
	case want != "" && !strings.Contains(err.Error(), u.Redacted()):
		t.Errorf("%s: the error does not name the URL: %v", rawURL, err)
	}
	return u
}

func TestNewPolicyBadPattern(t *testing.T) {
	_, err := NewPolicy([]string{`^ok`, `(`})
	if err == nil || !strings.Contains(err.Error(), "--foreign-allow") || !strings.Contains(err.Error(), `"("`) {
		t.Errorf("got %v", err)
	}
	if _, err := NewFetcher(WithAllow(`[`)); err == nil {
		t.Error("NewFetcher accepted a bad pattern")
	}
}

// TestAllowIgnoresUserPart: patterns see scheme, host, port and path only,
// so a trusted name written as a user part admits nothing, and a URL with
// a user part needs a pattern that itself contains '@'.
func TestAllowIgnoresUserPart(t *testing.T) {
	mirror, err := NewPolicy([]string{`^http://mirror\.corp\.example`})
	if err != nil {
		t.Fatal(err)
	}
	withUser, err := NewPolicy([]string{`^http://svc:[^@]*@10\.0\.0\.5/`, `^https://public\.example/`})
	if err != nil {
		t.Fatal(err)
	}
	queryOnly, _ := NewPolicy([]string{`mirror\.corp\.example`})
	for _, tc := range []struct {
		url    string
		policy *Policy
		want   string // "" for no error, else a word of the refusal
	}{
		{"http://mirror.corp.example@127.0.0.1/x", mirror, "user part"},
		{"http://mirror.corp.example:80@127.0.0.1/x", mirror, "user part"},
		{"http://127.0.0.1/x?h=mirror.corp.example", queryOnly, "loopback"},
		{"http://127.0.0.1/x#mirror.corp.example", queryOnly, "loopback"},
		{"http://mirror.corp.example/x", mirror, ""},
		{"https://u:secret@public.example/x", withUser, "user part"}, // a pattern without '@' never admits credentials
		{"https://u:secret@cdn.example/x", mirror, "user part"},      // a public address, still refused
		{"http://svc:secret@10.0.0.5/x", withUser, ""},
		{"http://other:secret@10.0.0.5/x", withUser, "user part"},
	} {
		u := checkURLCase(t, tc.url, tc.policy, tc.want)
		// The dial-time allowance follows the same rule.
		if tc.want != "" && tc.policy.CheckAddr(tc.policy.WithURL(context.Background(), u), "127.0.0.1:80") == nil {
			t.Errorf("%s: dialing loopback allowed", tc.url)
		}
	}
}
