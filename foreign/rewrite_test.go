package foreign

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestRewriteURLs(t *testing.T) {
	ms, err := ParseRewrite("https://go.microsoft.com/=http://mirror.corp/ms/")
	if err != nil {
		t.Fatal(err)
	}
	// The first matching rule wins.
	other := Rewrite{From: "https://go.microsoft.com/fwlink", To: "http://never/"}
	in := []string{"https://go.microsoft.com/fwlink?linkid=1", "https://other/x"}
	got := RewriteURLs(in, []Rewrite{ms, other})
	if want := []string{"http://mirror.corp/ms/fwlink?linkid=1", "https://other/x"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if in[0] != "https://go.microsoft.com/fwlink?linkid=1" {
		t.Error("input modified")
	}
	if RewriteURLs(nil, []Rewrite{ms}) != nil {
		t.Error("nil in, non-nil out")
	}
}

func TestParseRewrite(t *testing.T) {
	for in, want := range map[string]Rewrite{
		"a=b": {From: "a", To: "b"},
		"https://go.microsoft.com/fwlink?linkid=17=https://mirror/17": {From: "https://go.microsoft.com/fwlink?linkid=17", To: "https://mirror/17"},
		"https://x/?a=1=http://y/?b=2":                                {From: "https://x/?a=1", To: "http://y/?b=2"},
	} {
		got, err := ParseRewrite(in)
		if err != nil || got != want {
			t.Errorf("ParseRewrite(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"nope", "=b", "a=", ""} {
		if _, err := ParseRewrite(in); err == nil {
			t.Errorf("ParseRewrite(%q): no error", in)
		}
	}
}

func TestCheckPublishable(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://mirror.example/x?linkid=1", true},
		{"https://u:SECRET@mirror.example/x", false},
		{"https://token@mirror.example/x", false},
	} {
		err := CheckPublishable(tc.url)
		if tc.ok != (err == nil) || (err != nil && (!errors.Is(err, ErrCredentialsInURL) || strings.Contains(err.Error(), "SECRET"))) {
			t.Errorf("%s: %v", tc.url, err)
		}
	}
	if _, err := ParseRewrite("https://go.microsoft.com/=https://u:SECRET@mirror.example/"); !errors.Is(err, ErrCredentialsInURL) || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("rewrite to a URL with credentials: %v", err)
	}
}

// TestCheckPublishableUnparsable: a URL that does not parse is refused for
// that, not as one carrying credentials, and the message names it without
// a password it may hold.
func TestCheckPublishableUnparsable(t *testing.T) {
	for raw, want := range map[string]string{
		"https://mirror.example:port/x":          `URL https://mirror.example:port/x: it does not parse as a URL: invalid port ":port" after host`,
		"https://u:SECRET@mirror.example:port/x": `URL https://xxxxx@mirror.example:port/x: it does not parse as a URL`,
		"https://u:SE%zzCRET@mirror.example/x":   `URL https://xxxxx@mirror.example/x: it does not parse as a URL`,
	} {
		err := CheckPublishable(raw)
		if err == nil || errors.Is(err, ErrCredentialsInURL) || err.Error() != want {
			t.Errorf("%s: %v; want %s", raw, err, want)
		}
	}
}
