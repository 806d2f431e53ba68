package foreign

import (
	"errors"
	"net/url"
	"strings"
)

// Redact returns raw, a URL given by a user or read from a manifest, in a
// form fit for messages: a parsable URL with a user part is shown as
// net/url's Redacted shows it (the password replaced). A string that does
// not parse as a URL with its user part, but holds an "@", may still hold
// a password that no parser can locate: everything before its last "@" is
// hidden. Anything else is returned as it is.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err == nil && u.User != nil {
		return u.Redacted()
	}
	if err == nil && !strings.Contains(u.Opaque, "@") {
		return raw
	}
	if i := strings.LastIndex(raw, "@"); i >= 0 {
		return "xxxxx@" + raw[i+1:]
	}
	return raw
}

// parseProblem says what url.Parse's err found wrong with raw without
// quoting raw, as url.Error's message does, password and all. When raw
// holds an "@", the detail (such as a bad %-escape, which may lie in the
// password) is left out too.
func parseProblem(raw string, err error) string {
	var ue *url.Error
	if strings.Contains(raw, "@") || !errors.As(err, &ue) {
		return "it does not parse as a URL"
	}
	return "it does not parse as a URL: " + ue.Err.Error()
}
