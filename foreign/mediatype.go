// Package foreign handles foreign (non-distributable) layers: the media
// types, the policy that decides which URLs may be fetched, and the fetcher
// that streams such blobs from their URLs with redirects, retries, resume
// and verification.
package foreign

import (
	"fmt"
	"strings"
)

// Foreign (non-distributable) layer media types. Registries do not hold
// such blobs; clients download them from the descriptor's urls.
const (
	// DockerForeign is Docker's foreign layer, e.g. a Windows base layer.
	DockerForeign = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	// OCINondist is the OCI non-distributable uncompressed layer.
	OCINondist = "application/vnd.oci.image.layer.nondistributable.v1.tar"
	// OCINondistGzip is the OCI non-distributable gzip layer.
	OCINondistGzip = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
	// OCINondistZstd is the OCI non-distributable zstd layer.
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

// Distributable returns the ordinary layer type with the same content
// encoding as a foreign one (Docker foreign: the Docker layer type;
// OCI non-distributable: the OCI layer type with the same suffix), and
// false when mediaType is not foreign.
func Distributable(mediaType string) (string, bool) {
	d, ok := distributable[mediaType]
	return d, ok
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
		return Rewrite{}, fmt.Errorf("invalid URL rewrite %q: want FROM=TO, e.g. https://go.microsoft.com/=https://mirror.example/", s)
	}
	return Rewrite{From: s[:i], To: s[i+1:]}, nil
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
