package server

// What the web view shows of a mirror (ferry serve --proxy): which
// upstream each cached repository came from and when its tags were last
// checked there. The mirror's state is only read here, through the
// accessors below; the pages themselves read the local storage, so they
// show what is cached and never ask an upstream.

import (
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-dev/ferry/internal/redact"
)

// uiUpstream is the upstream a mirror's repository came from.
type uiUpstream struct {
	// Name is how requests name the upstream (?ns=NAME or NAME/REPO).
	Name string `json:"name"`
	// URL is its base URL, never with a user part.
	URL string `json:"url"`
	// Repository is the repository's name upstream.
	Repository string `json:"repository"`
}

// origin returns the upstream the local repository name (PREFIX/REPO)
// came from; nil when m is nil or no upstream has the prefix.
func (m *mirror) origin(local string) *uiUpstream {
	if m == nil {
		return nil
	}
	up, rest := m.split(local)
	if up == nil || rest == "" {
		return nil
	}
	return &uiUpstream{Name: up.Name, URL: redact.URL(up.URL), Repository: rest}
}

// upstreamList lists the mirror's upstreams (Repository empty); nil when
// m is nil.
func (m *mirror) upstreamList() []uiUpstream {
	if m == nil {
		return nil
	}
	out := make([]uiUpstream, len(m.ups))
	for i, u := range m.ups {
		out[i] = uiUpstream{Name: u.Name, URL: redact.URL(u.URL)}
	}
	return out
}

// lastChecked returns when this process last checked the local
// repository's tag upstream; false when it has not (since it started).
func (m *mirror) lastChecked(local, tag string) (time.Time, bool) {
	if m == nil {
		return time.Time{}, false
	}
	up, _ := m.split(local)
	if up == nil {
		return time.Time{}, false
	}
	return up.lastChecked(local, tag)
}

// localizes reports whether the mirror serves foreign layers as ordinary
// ones (--proxy-foreign localize).
func (m *mirror) localizes() bool { return m != nil && m.localize }

// localizedAs returns the digest of the localized manifest the mirror
// serves for upstream manifest d of the local repository, when it has
// derived one since it started and it differs from d.
func (m *mirror) localizedAs(local string, d digest.Digest) (digest.Digest, bool) {
	if !m.localizes() {
		return "", false
	}
	desc, ok := m.loc.get(local + "@" + d.String())
	if !ok || desc.Digest == d {
		return "", false
	}
	return desc.Digest, true
}
