// Package foreign handles foreign (non-distributable) layers: the media
// types, the policy that decides which URLs may be fetched, and the fetcher
// that streams such blobs from their URLs with redirects, retries, resume
// and verification.
package foreign

import "strings"

// Foreign layer media types.
const (
	DockerForeign  = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	OCINondist     = "application/vnd.oci.image.layer.nondistributable.v1.tar"
	OCINondistGzip = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
	OCINondistZstd = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
)

var distributable = map[string]string{
	DockerForeign:  "application/vnd.docker.image.rootfs.diff.tar.gzip",
	OCINondist:     "application/vnd.oci.image.layer.v1.tar",
	OCINondistGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
	OCINondistZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
}

// IsForeign reports whether mediaType is a foreign layer type.
func IsForeign(mediaType string) bool {
	_, ok := distributable[mediaType]
	return ok
}

// Distributable returns the ordinary layer type matching a foreign one.
func Distributable(mediaType string) (string, bool) {
	d, ok := distributable[mediaType]
	return d, ok
}

// Rewrite replaces the prefix From of a URL with To.
type Rewrite struct {
	From, To string
}

// ParseRewrite parses "FROM=TO".
func ParseRewrite(s string) (Rewrite, error) {
	from, to, ok := strings.Cut(s, "=")
	if !ok || from == "" || to == "" {
		return Rewrite{}, &rewriteError{s}
	}
	return Rewrite{From: from, To: to}, nil
}

type rewriteError struct{ s string }

func (e *rewriteError) Error() string {
	return "invalid URL rewrite " + quote(e.s) + ": want FROM=TO, e.g. https://go.microsoft.com/=https://mirror.example/"
}

func quote(s string) string { return "\"" + s + "\"" }

// RewriteURLs applies the first matching prefix rule to each URL.
func RewriteURLs(urls []string, rules []Rewrite) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = u
		for _, r := range rules {
			if strings.HasPrefix(u, r.From) {
				out[i] = r.To + strings.TrimPrefix(u, r.From)
				break
			}
		}
	}
	return out
}
