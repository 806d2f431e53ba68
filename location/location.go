// Package location parses every form of image location ferry accepts into
// one Location: registry references (optionally prefixed docker://),
// oci:DIR, oci-archive:FILE, docker-archive:FILE and dir:DIR, with Windows paths
// (drive letters, UNC and \\?\ paths) kept whole.
//
// Parsing is the same on every operating system, so a Windows path parses
// identically on Linux and a test written on one runs on all.
//
// # Grammar
//
//	[docker://]HOST[:PORT]/REPO[:TAG|@DIGEST]   registry (Docker Hub short forms too)
//	oci:DIR[:TAG|@DIGEST]                       OCI image layout directory
//	oci-archive:FILE[:TAG|@DIGEST]              tar of an OCI image layout
//	docker-archive:FILE[:REPO[:TAG]]            docker save tarball
//	dir:DIR                                     skopeo's dir: layout (one image)
//
// # Routing
//
// Text starting with docker:// is a registry reference. Otherwise, when the
// text starts with WORD: where WORD matches [a-z][a-z0-9-]*:
//
//   - oci, oci-archive, docker-archive, dir: that transport, always (write
//     docker://oci:5000/x for a registry whose host is named oci).
//   - localhost, or WORD followed by a port (digits, then '/' or the end):
//     a registry reference (localhost:5000/app, myhost:5000/repo).
//   - docker followed by anything else: an error suggesting docker://.
//   - a WORD one typo from a transport (ocii, oci-archiv, dri; two typos
//     for words of five letters or more): ErrUnknownTransport saying
//     "did you mean oci-archive:", rather than a Docker Hub lookup.
//   - WORD followed by a valid tag, optionally then @DIGEST: a Docker Hub
//     short form NAME:TAG (alpine:3.20, docker:27-dind, foo:bar).
//   - anything else: ErrUnknownTransport (s3:bucket/x, foo:bar/baz).
//
// A registry reference (not written with docker://) that names an existing
// file or directory is refused with a hint at the prefix it needs
// (amd64.tar: "did you mean docker-archive:amd64.tar"), and so is a
// registry host without a repository (localhost:5000,
// registry.example.com), which ggcr would take for a Docker Hub
// repository: Parse looks at the file system for that, and only for that.
//
// A WORD containing '.' or '_' or an upper-case letter never matches, so
// registry.example.com:443/a/b:v1 is a registry reference. http:// and
// https:// are refused (ErrInvalid): references carry no URL scheme. So is
// a bare path (C:\x, c:/x, /x, \x, ./x, ../x, ~/x), with a hint to write
// oci:PATH; ggcr alone would take ./x for the repository x on a registry
// named ".".
//
// # Windows paths
//
// A drive is one ASCII letter, ':' and then '\' or '/' at the very start of
// the path part (also after a \\?\ or \\.\ prefix). Its colon never
// separates a tag or reference: oci:C:\images\layout is the path
// C:\images\layout with no tag; oci:C:\images\layout:tag has the tag "tag".
// oci:C:tag (no slash after the colon) is the path "C" with the tag "tag".
//
// # oci: and oci-archive:
//
// After the prefix (and any drive), a trailing @sha256:<64 hex> or
// @sha512:<128 hex> selects by digest. Text after the last '@' that starts
// with sha256: or sha512: but is not such a digest is an error; any other
// '@' is part of the path. Then, when the text after a ':' is a full image
// reference, HOST/REPO:TAG whose host has a '.' or a port or is localhost
// (what a bundle records as an image's ref.name), the first such ':'
// separates path and tag, as skopeo reads it:
// oci-archive:b.tar:localhost:5000/app:multi is the file "b.tar" and the
// tag "localhost:5000/app:multi". Otherwise the text after the last ':' is
// a tag only if it is a valid tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127});
// otherwise it stays part of the path, so oci:/data/a:b/c is the directory
// "/data/a:b/c". When both a tag and a digest are written
// (oci:DIR:TAG@DIGEST) both are recorded and the digest selects, as with
// registry references.
//
// # docker-archive:
//
// The file ends at the first ':' that is not a drive colon; everything after
// it is the image reference, REPO or REPO:TAG, which may itself contain a
// host, port and slashes (docker-archive:out.tar:localhost:5000/app:v1).
// ggcr's rules split the tag off at the last ':' when no '/' follows it. A
// file name containing ':' (other than a drive) cannot be written. The
// reference may not carry a digest.
//
// # dir:
//
// Everything after the prefix is the directory, colons and '@' included:
// a dir: directory holds one image, so there is no tag or digest to select
// (dir:C:\images\x:v1 is the directory "C:\images\x:v1").
package location

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferry-dev/ferry/internal/redact"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrInvalid means the text is not a valid location.
	ErrInvalid = errors.New("invalid location")
	// ErrUnknownTransport means the text starts with a PREFIX: that is not
	// a transport ferry knows.
	ErrUnknownTransport = errors.New("unknown transport")
)

// Kind is the kind of place a location names.
type Kind int

// The kinds of location.
const (
	// Registry is a repository in a registry (docker://).
	Registry Kind = iota
	// OCILayout is an OCI image layout directory (oci:).
	OCILayout
	// OCIArchive is a tar of an OCI image layout (oci-archive:).
	OCIArchive
	// DockerArchive is a docker save tarball (docker-archive:).
	DockerArchive
	// Dir is a directory in the layout of skopeo's dir: transport (dir:).
	Dir
)

// String returns the kind's name, which is also its prefix for local kinds.
func (k Kind) String() string {
	switch k {
	case Registry:
		return "registry"
	case OCILayout:
		return "oci"
	case OCIArchive:
		return "oci-archive"
	case DockerArchive:
		return "docker-archive"
	case Dir:
		return "dir"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Location is a parsed location.
type Location struct {
	// Kind says which of the other fields are meaningful.
	Kind Kind
	// Raw is the text as given.
	Raw string
	// Ref is the registry reference, a name.Tag or a name.Digest
	// (Registry only).
	Ref name.Reference
	// Path is the directory or file of a local location, drive or UNC
	// prefix included.
	Path string
	// Tag is the oci/oci-archive tag, or docker-archive's image reference
	// ("REPO" or "REPO:TAG") as written; "" when none was given.
	Tag string
	// Digest selects an oci image by digest ("sha256:..."); it wins over
	// Tag when both are given.
	Digest string
	// ExplicitTag says whether a registry reference was written with a tag
	// or a digest (false when the tag defaulted to latest).
	ExplicitTag bool
}

type options struct{ insecure bool }

// Option configures Parse.
type Option func(*options)

// WithInsecure parses registry references with name.Insecure, so they may
// be reached over plain HTTP.
func WithInsecure() Option { return func(o *options) { o.insecure = true } }

// Transport prefixes.
const (
	dockerPrefix        = "docker://"
	ociPrefix           = "oci:"
	ociArchivePrefix    = "oci-archive:"
	dockerArchivePrefix = "docker-archive:"
	dirPrefix           = "dir:"
)

var (
	wordRe   = regexp.MustCompile(`^[a-z][a-z0-9-]*:`)
	tagRe    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	digestRe = regexp.MustCompile(`^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$`)
)

const knownTransports = "docker://, oci:, oci-archive:, docker-archive:, dir: (none for a registry reference)"

// Parse parses s into a Location; see the package documentation for the
// grammar. Errors wrap ErrInvalid or ErrUnknownTransport.
func Parse(s string, opts ...Option) (Location, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	r := route(s)
	switch r.kind {
	case routeRegistry:
		return parseRegistry(s, r.body, o)
	case routeLayout:
		return parseLayout(s, r.body, OCILayout)
	case routeLayoutArchive:
		return parseLayout(s, r.body, OCIArchive)
	case routeDockerArchive:
		return parseDockerArchive(s, r.body)
	case routeDir:
		if r.body == "" {
			return Location{}, invalid(s, "no directory after "+dirPrefix)
		}
		return Location{Kind: Dir, Raw: s, Path: r.body}, nil
	}
	return Location{}, r.err
}

type routeKind int

const (
	routeFail routeKind = iota // err says why
	routeRegistry
	routeLayout
	routeLayoutArchive
	routeDockerArchive
	routeDir
)

type routed struct {
	kind routeKind
	body string // the text after the transport prefix
	err  error
}

// route decides the transport of s, without validating the rest.
func route(s string) routed {
	if s == "" {
		return routed{err: invalid(s, "empty location")}
	}
	if rest, ok := strings.CutPrefix(s, dockerPrefix); ok {
		return routed{kind: routeRegistry, body: rest}
	}
	m := wordRe.FindString(s)
	if m == "" {
		if drive, _ := splitDrive(s); drive != "" {
			return routed{err: invalid(s, "a bare path is not a location; write oci:PATH, oci-archive:FILE or docker-archive:FILE")}
		}
		return routed{kind: routeRegistry, body: s}
	}
	word, rest := m[:len(m)-1], s[len(m):]
	switch word {
	case "oci":
		return routed{kind: routeLayout, body: rest}
	case "oci-archive":
		return routed{kind: routeLayoutArchive, body: rest}
	case "docker-archive":
		return routed{kind: routeDockerArchive, body: rest}
	case "dir":
		return routed{kind: routeDir, body: rest}
	case "localhost":
		return routed{kind: routeRegistry, body: s}
	}
	if len(word) == 1 && (strings.HasPrefix(rest, `\`) || strings.HasPrefix(rest, "/")) {
		return routed{err: invalid(s, "a bare path is not a location; write oci:PATH, oci-archive:FILE or docker-archive:FILE")}
	}
	if (word == "http" || word == "https") && strings.HasPrefix(rest, "//") {
		return routed{err: invalid(s, "an image reference has no URL scheme; drop "+word+":// (plain HTTP is --insecure, and automatic for loopback hosts)")}
	}
	if startsWithPort(rest) {
		return routed{kind: routeRegistry, body: s}
	}
	if t := nearTransport(word); t != "" {
		// ocii:foo or oci-archiv:x.tar would otherwise be a Docker Hub
		// short form NAME:TAG and end in a lookup of index.docker.io.
		return routed{err: fmt.Errorf("%w %q in %q: did you mean %s? (known: %s; write docker://%s for a Docker Hub image of that name)", ErrUnknownTransport, word, s, t, knownTransports, s)}
	}
	if startsWithTag(rest) {
		return routed{kind: routeRegistry, body: s}
	}
	if word == "docker" {
		return routed{err: invalid(s, "the registry transport is written docker://")}
	}
	return routed{err: fmt.Errorf("%w %q in %q; known: %s", ErrUnknownTransport, word, s, knownTransports)}
}

// transportWords are the prefixes a mistyped one is compared with.
var transportWords = []string{"oci", "oci-archive", "docker-archive", "dir", "docker"}

// nearTransport returns the transport prefix ("oci-archive:",
// "docker://") that word is a likely typo of, or "": one edit away (an
// insertion, deletion, substitution or swap of neighbours) for short
// words, two for words of five letters or more. A word that is a
// transport is not a typo of another.
func nearTransport(word string) string {
	best, bestD := "", 3
	for _, t := range transportWords {
		if t == word {
			return ""
		}
		limit := 1
		if len(t) >= 5 {
			limit = 2
		}
		if d := editDistance(word, t); d <= limit && d < bestD {
			best, bestD = t, d
		}
	}
	switch best {
	case "":
		return ""
	case "docker":
		return dockerPrefix
	}
	return best + ":"
}

// editDistance is the optimal string alignment distance between a and b
// (Levenshtein with swaps of neighbours), on bytes.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// startsWithPort reports whether rest is "PORT" or "PORT/...".
func startsWithPort(rest string) bool {
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	return i > 0 && (i == len(rest) || rest[i] == '/')
}

// startsWithTag reports whether rest is "TAG" or "TAG@...", the rest of a
// Docker Hub short form NAME:TAG[@DIGEST].
func startsWithTag(rest string) bool {
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		rest = rest[:i]
	}
	return tagRe.MatchString(rest)
}

// invalid names raw without the password a user part may hold
// (https://user:password@host/app pasted as a reference).
func invalid(raw, why string) error {
	return fmt.Errorf("%w %q: %s", ErrInvalid, redact.URL(raw), why)
}

func parseRegistry(raw, s string, o options) (Location, error) {
	if s == "" {
		return Location{}, invalid(raw, "no image reference after "+dockerPrefix)
	}
	if looksLikePath(s) {
		// ggcr would take "./x" for the repository x on a registry ".".
		return Location{}, invalid(raw, "a path is not an image reference; write oci:PATH, oci-archive:FILE or docker-archive:FILE")
	}
	if !strings.HasPrefix(raw, dockerPrefix) {
		// amd64.tar or images/app would otherwise be Docker Hub's
		// library/amd64.tar and images/app.
		if hint := localHint(s); hint != "" {
			return Location{}, invalid(raw, hint)
		}
	}
	if host, ok := hostOnly(s); ok {
		return Location{}, invalid(raw, fmt.Sprintf("%q has no repository: a registry reference is HOST/REPO[:TAG|@DIGEST] (a local file takes a prefix, oci:, oci-archive: or docker-archive:, and there is no file of that name here)", host))
	}
	var nopts []name.Option
	if o.insecure {
		nopts = append(nopts, name.Insecure)
	}
	ref, err := name.ParseReference(s, nopts...)
	if err != nil {
		// ParseReference's error only says it failed; NewTag or NewDigest
		// says why.
		if strings.Contains(s, "@") {
			_, err2 := name.NewDigest(s, nopts...)
			err = cmp.Or(err2, err)
		} else {
			_, err2 := name.NewTag(s, nopts...)
			err = cmp.Or(err2, err)
		}
		if shown := redact.URL(raw); shown != raw {
			// ggcr's error quotes s, password and all.
			return Location{}, invalid(raw, "not an image reference: a reference has no user:password@ (log in with ferry login)")
		}
		return Location{}, fmt.Errorf("%w %q: not an image reference: %w", ErrInvalid, raw, err)
	}
	if repo := ref.Context().RepositoryStr(); len(repo) > maxRepository {
		// ggcr checks the name as written; Docker Hub's library/ prefix
		// can take it past the limit, and the reference would not parse
		// again as it prints.
		return Location{}, fmt.Errorf("%w %q: not an image reference: repository %s is %d characters long; the limit is %d", ErrInvalid, raw, abbreviate(repo), len(repo), maxRepository)
	}
	explicit := false
	if _, ok := ref.(name.Digest); ok {
		explicit = true
	} else {
		// ggcr's rule: a tag follows the last ':' when no '/' follows it.
		i := strings.LastIndexByte(s, ':')
		explicit = i >= 0 && !strings.Contains(s[i+1:], "/")
	}
	return Location{Kind: Registry, Raw: raw, Ref: ref, ExplicitTag: explicit}, nil
}

// maxRepository is the longest repository name, as distribution-spec
// and go-containerregistry count it.
const maxRepository = 255

// abbreviate shortens a long name for an error message.
func abbreviate(s string) string {
	if len(s) <= 40 {
		return s
	}
	return s[:37] + "..."
}

// localHint is the advice for a registry reference s that also names an
// existing file or directory, or "". What is there decides the prefix
// suggested (see Local).
func localHint(s string) string {
	if _, err := os.Stat(s); err != nil {
		return ""
	}
	mean := "oci:, oci-archive:, docker-archive: or dir: before it"
	if loc, err := Local(s); err == nil {
		mean = loc.Kind.String() + ":" + s
	}
	msg := fmt.Sprintf("%q is a file or directory here, not an image reference: did you mean %s?", s, mean)
	if _, hostLike := hostOnly(s); !hostLike {
		msg += fmt.Sprintf(" (write docker://%s for the registry image)", s)
	}
	return msg
}

// hostOnly reports whether the reference s is only a registry host, with
// or without a port (localhost:5000, registry.example.com, 10.0.0.5:5000,
// [::1]:5000), which ggcr would read as a Docker Hub repository with the
// port for a tag. A name without a dot (myhost:5000) stays a Docker Hub
// NAME:TAG such as node:20.
func hostOnly(s string) (string, bool) {
	if strings.ContainsAny(s, "/@") {
		return "", false
	}
	host := s
	if h, port, err := net.SplitHostPort(s); err == nil {
		if port == "" || strings.Trim(port, "0123456789") != "" {
			return "", false // NAME:TAG
		}
		host = h
	}
	if strings.EqualFold(host, "localhost") || strings.Contains(host, ".") || net.ParseIP(host) != nil {
		return s, true
	}
	return "", false
}

func looksLikePath(s string) bool {
	if drive, _ := splitDrive(s); drive != "" {
		return true
	}
	for _, p := range []string{"/", `\`, "./", "../", `.\`, `..\`, "~"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return s == "." || s == ".."
}

// splitDrive splits a leading Windows drive ("C:" before '\' or '/',
// optionally after a \\?\ or \\.\ device prefix) off p, so that its colon
// is not taken for a separator.
func splitDrive(p string) (drive, rest string) {
	n := 0
	for _, dev := range []string{`\\?\`, `\\.\`, `//?/`, `//./`} {
		if strings.HasPrefix(p, dev) {
			n = len(dev)
			break
		}
	}
	q := p[n:]
	if len(q) >= 3 && isASCIILetter(q[0]) && q[1] == ':' && (q[2] == '\\' || q[2] == '/') {
		return p[:n+2], p[n+2:]
	}
	return "", p
}

func isASCIILetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// parseLayout parses the body of oci: (kind OCILayout) or oci-archive:
// (kind OCIArchive).
func parseLayout(raw, body string, kind Kind) (Location, error) {
	loc := Location{Kind: kind, Raw: raw}
	drive, rest := splitDrive(body)
	if i := strings.LastIndexByte(rest, '@'); i >= 0 && looksLikeDigest(rest[i+1:]) {
		d := rest[i+1:]
		if !digestRe.MatchString(d) {
			return Location{}, invalid(raw, fmt.Sprintf("%q is not a valid digest (want sha256:<64 lower-case hex> or sha512:<128 lower-case hex>)", d))
		}
		loc.Digest = d
		rest = rest[:i]
	}
	if i := fullRefColon(rest); i >= 0 {
		loc.Tag = rest[i+1:]
		rest = rest[:i]
	} else if i := strings.LastIndexByte(rest, ':'); i >= 0 && tagRe.MatchString(rest[i+1:]) {
		loc.Tag = rest[i+1:]
		rest = rest[:i]
	}
	loc.Path = drive + rest
	if loc.Path == "" {
		what := "directory"
		if kind != OCILayout {
			what = "file"
		}
		return Location{}, invalid(raw, "no "+what+" after "+kind.String()+":")
	}
	return loc, nil
}

// fullRefColon returns the index of the first ':' in rest after which
// comes a full image reference, HOST/REPO:TAG with a host that has a '.'
// or a port or is localhost, as bundles and skopeo record an image's
// org.opencontainers.image.ref.name; -1 when there is none.
func fullRefColon(rest string) int {
	for i := 0; i < len(rest); i++ {
		if rest[i] == ':' && isFullRef(rest[i+1:]) {
			return i
		}
	}
	return -1
}

func isFullRef(r string) bool {
	host, repo, ok := strings.Cut(r, "/")
	if !ok || !(strings.ContainsAny(host, ".:") || host == "localhost") {
		return false
	}
	if i := strings.LastIndexByte(repo, ':'); i < 0 || strings.Contains(repo[i+1:], "/") {
		return false // no tag
	}
	_, err := name.NewTag(r, name.StrictValidation)
	return err == nil
}

func looksLikeDigest(s string) bool {
	return strings.HasPrefix(s, "sha256:") || strings.HasPrefix(s, "sha512:")
}

func parseDockerArchive(raw, body string) (Location, error) {
	loc := Location{Kind: DockerArchive, Raw: raw}
	drive, rest := splitDrive(body)
	if i := strings.IndexByte(rest, ':'); i >= 0 {
		ref := rest[i+1:]
		rest = rest[:i]
		switch {
		case ref == "":
			return Location{}, invalid(raw, "no image reference after the file's ':' (want docker-archive:FILE[:REPO:TAG])")
		case strings.Contains(ref, "@"):
			return Location{}, invalid(raw, fmt.Sprintf("the image reference %q has a digest; docker-archive names images by REPO:TAG", ref))
		}
		if _, err := name.NewTag(ref); err != nil {
			return Location{}, fmt.Errorf("%w %q: %q is not a REPO:TAG reference: %w", ErrInvalid, raw, ref, err)
		}
		loc.Tag = ref
	}
	loc.Path = drive + rest
	if loc.Path == "" {
		return Location{}, invalid(raw, "no file after docker-archive:")
	}
	return loc, nil
}

// String returns the location in canonical form: a registry reference's
// fully qualified name (docker:// only when needed to parse back as a
// registry reference), or PREFIX:PATH[:TAG][@DIGEST] for local kinds.
// Parsing the result gives the same location.
func (l Location) String() string {
	switch l.Kind {
	case Registry:
		if l.Ref == nil {
			return l.Raw
		}
		s := l.Ref.Name()
		if route(s).kind != routeRegistry {
			s = dockerPrefix + s
		}
		return s
	case Dir:
		return dirPrefix + l.Path
	case OCILayout, OCIArchive, DockerArchive:
		s := l.Kind.String() + ":" + l.Path
		if l.Tag != "" {
			s += ":" + l.Tag
		}
		if l.Digest != "" {
			s += "@" + l.Digest
		}
		return s
	}
	return l.Raw
}

// IsLocal reports whether the location is a local file or directory.
func (l Location) IsLocal() bool { return l.Kind != Registry }

// PlainHTTP reports whether a registry location may be reached over plain
// HTTP: always for a loopback host, and for any host when insecure is set.
// It is false for local kinds.
func (l Location) PlainHTTP(insecure bool) bool {
	if l.Kind != Registry || l.Ref == nil {
		return false
	}
	return insecure || IsLoopbackHost(l.Ref.Context().RegistryStr())
}

// IsLoopbackHost reports whether host, with or without a port, is
// localhost or a loopback address: "localhost", "localhost:5000",
// 127.0.0.0/8, "::1", "[::1]:5000".
func IsLoopbackHost(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	} else if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if strings.EqualFold(strings.TrimSuffix(h, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
