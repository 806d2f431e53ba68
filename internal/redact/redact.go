// Package redact shows URLs and references given by users, or read from
// manifests, in messages without the password a user part may hold.
package redact

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
)

// Hidden stands for the user part URL hides, as net/url's Redacted
// stands for a password.
const Hidden = "xxxxx"

// URL returns raw fit for messages. A URL that parses and has a user
// part is shown as net/url's Redacted shows it (the password replaced);
// the values of a signed URL's credentials are hidden too (Secrets).
// Of a "scheme://" string that does not parse, everything between
// "://" and its last "@" is hidden: no parser can say where a password
// in it ends. Of a string without "://" (a reference, or host:port), a
// user part can only come before the first "/", "?" or "#" (after them an
// "@" starts a digest): what comes before the last "@" there is hidden
// when it holds a ":", a password's mark, and what follows is a host
// (host or host:port, where oci:dir@sha256:… and app:tag@sha256:… have
// a digest). Anything else is returned as it is.
func URL(raw string) string {
	return Secrets(userPart(raw))
}

// userPart is URL without the query's secrets: raw with its user part
// hidden.
func userPart(raw string) string {
	u, err := url.Parse(raw)
	if err == nil && u.User != nil {
		return u.Redacted()
	}
	if scheme, rest, ok := strings.Cut(raw, "://"); ok {
		if i := strings.LastIndex(rest, "@"); err != nil && i >= 0 {
			return scheme + "://" + Hidden + "@" + rest[i+1:]
		}
		return raw
	}
	end := strings.IndexAny(raw, "/?#")
	if end < 0 {
		end = len(raw)
	}
	if i := strings.LastIndex(raw[:end], "@"); i >= 0 && strings.Contains(raw[:i], ":") && hostLike(raw[i+1:end]) {
		return Hidden + "@" + raw[i+1:]
	}
	return raw
}

// hostLike reports whether h is a host or host:port, not a digest
// (algorithm:hex).
func hostLike(h string) bool {
	j := strings.LastIndex(h, ":")
	if j < 0 || strings.HasSuffix(h, "]") {
		return true
	}
	port := h[j+1:]
	return port != "" && strings.Trim(port, "0123456789") == ""
}

// ParseProblem says what url.Parse's err found wrong with raw without
// quoting raw, as url.Error's message does, password and all. When raw
// holds an "@", the detail (such as a bad %-escape, which may lie in the
// password) is left out too. Name raw beside it with URL.
func ParseProblem(raw string, err error) string {
	var ue *url.Error
	if strings.Contains(raw, "@") || !errors.As(err, &ue) {
		return "it does not parse as a URL"
	}
	return "it does not parse as a URL: " + ue.Err.Error()
}

// signed matches the query parameters that make a URL its own credential
// — a presigned S3, GCS or Azure URL (a registry's redirect to its
// storage, a foreign layer's CDN), or a token — with their value: after
// "?" or "&", or "\u0026" as a JSON log line escapes "&".
var signed = regexp.MustCompile(`((?:[?&]|\\u0026)(?i:x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential|signature|sig|awsaccesskeyid|access_token|token)=)[^&\s"'\\]+`)

// Secrets returns s, a message or log line, with the values of the
// credential query parameters of the URLs in it (X-Amz-Signature,
// X-Amz-Credential, X-Amz-Security-Token, X-Goog-Signature,
// X-Goog-Credential, Signature, sig, AWSAccessKeyId, access_token,
// token) replaced by Hidden. Go's HTTP client quotes a failed request's
// URL whole in its error, query and all, and a URL a registry or a
// foreign layer redirects to may be presigned: valid, for a while, to
// whoever reads the log.
func Secrets(s string) string {
	if !strings.ContainsAny(s, "?&\\") {
		return s
	}
	return signed.ReplaceAllString(s, "${1}"+Hidden)
}
