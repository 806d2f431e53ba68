// Package foreign handles foreign (non-distributable) layers: the policy
// that decides which URLs may be fetched, URL rewrites, and the fetcher
// that streams such blobs from their URLs with redirects, retries, resume
// and verification. The media types themselves are package mediatype's.
package foreign

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/ferry-dev/ferry/internal/redact"
)

// ErrCredentialsInURL means a URL that would be written into a manifest
// carries a user part (user:password@): a manifest is public to everyone
// who can pull the image, so ferry refuses rather than publish it.
var ErrCredentialsInURL = errors.New("a URL written into a manifest must not carry credentials")

// CheckPublishable refuses a URL that is about to be written into a
// manifest (append --foreign-url, --foreign-rewrite-urls' TO) when it has a
// user part, or when it does not parse. The error shows the URL redacted.
func CheckPublishable(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("URL %s: %s", redact.URL(raw), redact.ParseProblem(raw, err))
	}
	if u.User != nil {
		return fmt.Errorf("%w: %s has a user part; publish a URL without user:password@ (ferry refuses rather than strip it, so that nothing is written that the registry behind it rejects)", ErrCredentialsInURL, u.Redacted())
	}
	return nil
}

// Rewrite replaces the prefix From of a URL with To (the
// --foreign-rewrite-urls flag), so that a network can serve foreign layers
// from its own web server.
type Rewrite struct {
	From, To string
}

// ParseRewrite parses "FROM=TO". FROM may itself contain "=" (Microsoft's
// URLs end in "?linkid=N"): the rule splits at the first "=" followed by
// "http://" or "https://", and only when there is none at the first "=".
func ParseRewrite(s string) (Rewrite, error) {
	i := -1
	for _, sep := range []string{"=http://", "=https://"} {
		if j := strings.Index(s, sep); j >= 0 && (i < 0 || j < i) {
			i = j
		}
	}
	if i < 0 {
		i = strings.Index(s, "=")
	}
	if i <= 0 || i == len(s)-1 {
		// Named with each side redacted: TO may hold user:password@
		// (refused below, but a rule that does not split still shows it).
		shown := redact.URL(s)
		if i >= 0 {
			shown = redact.URL(s[:i]) + "=" + redact.URL(s[i+1:])
		}
		return Rewrite{}, fmt.Errorf("invalid URL rewrite %q: want FROM=TO, e.g. https://go.microsoft.com/=https://mirror.example/", shown)
	}
	rw := Rewrite{From: s[:i], To: s[i+1:]}
	if err := CheckPublishable(rw.To); err != nil {
		return Rewrite{}, fmt.Errorf("URL rewrite TO: %w", err)
	}
	return rw, nil
}

// RewriteURLs returns urls with the first matching rule of rules applied
// to each: a URL starting with a rule's From has that prefix replaced by
// its To. URLs no rule matches are kept. urls is not modified.
func RewriteURLs(urls []string, rules []Rewrite) []string {
	if urls == nil {
		return nil
	}
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = u
		for _, r := range rules {
			if r.From != "" && strings.HasPrefix(u, r.From) {
				out[i] = r.To + strings.TrimPrefix(u, r.From)
				break
			}
		}
	}
	return out
}
