package foreign

import (
	"errors"
	"strings"
	"testing"
)

// TestParseRewriteHidesPassword: no error for a bad rewrite rule shows the
// password of a user part, whichever side holds it and whether or not it
// parses as a URL; the error still names the rest of the rule.
func TestParseRewriteHidesPassword(t *testing.T) {
	for _, rule := range []string{
		"=https://user:secret@mirror.example/",               // no FROM
		"https://user:secret@mirror.example/",                // no "="
		"https://user:secret@mirror.example/=",               // no TO
		"https://user:secret@mirror.example:port/",           // no "=", does not parse
		"=https://user:secret@mirror.example:port/",          // no FROM, does not parse
		"https://a/=https://user:secret@mirror.example/",     // TO with a user part
		"https://a/=https://user:s%zzecret@mirror.example/",  // TO does not parse
		"https://a/=https://user:secret@mirror.example:port", // TO does not parse
	} {
		_, err := ParseRewrite(rule)
		if err == nil {
			t.Errorf("%s: no error", rule)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "secret") || strings.Contains(msg, "%zz") || !strings.Contains(msg, "mirror.example") {
			t.Errorf("%s: %v; want the rule named without its password", rule, err)
		}
	}
}

// TestOpenUnparsableURLHidesPassword: a manifest's URL that does not parse
// fails without its password in the error.
func TestOpenUnparsableURLHidesPassword(t *testing.T) {
	_, err := fetch(t, newFetcher(t, WithAllow(`.*`)), descFor(testData(10), "http://u:secret@mirror.example:port/x"))
	wantErr(t, err, ErrURLRefused, "mirror.example:port/x", "does not parse")
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("the error shows the password: %v", err)
	}
	if !errors.Is(err, ErrAllURLsFailed) {
		t.Errorf("got %v, want ErrAllURLsFailed", err)
	}
}
