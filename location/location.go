// Package location parses every form of image location ferry accepts into
// one Location: registry references (optionally docker://), oci:DIR,
// oci-archive:FILE and docker-archive:FILE, with Windows paths (drive
// letters, UNC) kept whole on every OS.
package location

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrInvalid means the text is not a valid location.
	ErrInvalid = errors.New("invalid location")
	// ErrUnknownTransport means the text starts with an unknown PREFIX:.
	ErrUnknownTransport = errors.New("unknown location prefix")
)

// Kind is the kind of place a location names.
type Kind int

// The kinds of location.
const (
	Registry Kind = iota
	OCILayout
	OCIArchive
	DockerArchive
)

// String returns the kind's prefix spelling.
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
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Location is a parsed location.
type Location struct {
	Kind Kind
	// Raw is the text as given.
	Raw string
	// Ref is the registry reference (Registry only).
	Ref name.Reference
	// ExplicitTag says whether a registry reference had a tag or digest.
	ExplicitTag bool
	// Path is the directory or file of a local location.
	Path string
	// Tag is an oci/oci-archive tag, or docker-archive's "REPO:TAG".
	Tag string
	// Digest selects an oci image by digest ("sha256:...").
	Digest string
}

type options struct{ insecure bool }

// Option configures Parse.
type Option func(*options)

// WithInsecure marks registry references as allowed to use plain HTTP.
func WithInsecure() Option { return func(o *options) { o.insecure = true } }

var (
	prefixRe = regexp.MustCompile(`^([a-z][a-z0-9-]*):`)
	tagRe    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	digestRe = regexp.MustCompile(`^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$`)
)

var known = "docker://, oci:, oci-archive:, docker-archive:"

// Parse parses s.
func Parse(s string, opts ...Option) (Location, error) {
	o := &options{}
	for _, opt := range opts {
		opt(o)
	}
	if strings.TrimSpace(s) == "" {
		return Location{}, fmt.Errorf("%w: empty location", ErrInvalid)
	}
	switch {
	case strings.HasPrefix(s, "docker://"):
		return parseRegistry(s, strings.TrimPrefix(s, "docker://"), o)
	case strings.HasPrefix(s, "oci:"):
		return parseOCI(s, OCILayout, strings.TrimPrefix(s, "oci:"), true)
	case strings.HasPrefix(s, "oci-archive:"):
		return parseOCI(s, OCIArchive, strings.TrimPrefix(s, "oci-archive:"), false)
	case strings.HasPrefix(s, "docker-archive:"):
		return parseDockerArchive(s, strings.TrimPrefix(s, "docker-archive:"))
	}
	if m := prefixRe.FindStringSubmatch(s); m != nil {
		p := m[1]
		rest := s[len(m[0]):]
		if p != "localhost" && !startsWithPort(rest) {
			return Location{}, fmt.Errorf("%w %q in %q: known prefixes are %s, or none for a registry reference", ErrUnknownTransport, p+":", s, known)
		}
	}
	return parseRegistry(s, s, o)
}

// startsWithPort reports whether rest looks like "PORT/..." or "PORT".
func startsWithPort(rest string) bool {
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	return i > 0 && (i == len(rest) || rest[i] == '/')
}

func parseRegistry(raw, s string, o *options) (Location, error) {
	var nopts []name.Option
	if o.insecure {
		nopts = append(nopts, name.Insecure)
	}
	ref, err := name.ParseReference(s, nopts...)
	if err != nil {
		return Location{}, fmt.Errorf("%w: %q is not an image reference: %v", ErrInvalid, raw, err)
	}
	explicit := strings.Contains(s, "@")
	if !explicit {
		last := s[strings.LastIndex(s, "/")+1:]
		explicit = strings.Contains(last, ":")
	}
	return Location{Kind: Registry, Raw: raw, Ref: ref, ExplicitTag: explicit}, nil
}

// splitDrive splits a leading Windows drive ("C:\" or "C:/") off p, so its
// colon is not taken for a separator.
func splitDrive(p string) (drive, rest string) {
	if len(p) >= 3 && ((p[0] >= 'a' && p[0] <= 'z') || (p[0] >= 'A' && p[0] <= 'Z')) && p[1] == ':' && (p[2] == '\\' || p[2] == '/') {
		return p[:2], p[2:]
	}
	return "", p
}

func parseOCI(raw string, kind Kind, s string, digestOK bool) (Location, error) {
	drive, rest := splitDrive(s)
	loc := Location{Kind: kind, Raw: raw}
	if digestOK {
		if i := strings.LastIndex(rest, "@"); i >= 0 && digestRe.MatchString(rest[i+1:]) {
			loc.Digest = rest[i+1:]
			rest = rest[:i]
		}
	}
	if loc.Digest == "" {
		if i := strings.LastIndex(rest, ":"); i >= 0 {
			tag := rest[i+1:]
			if !tagRe.MatchString(tag) {
				return Location{}, fmt.Errorf("%w: %q: %q is not a valid tag", ErrInvalid, raw, tag)
			}
			loc.Tag = tag
			rest = rest[:i]
		}
	}
	loc.Path = drive + rest
	if rest == "" || loc.Path == "" {
		return Location{}, fmt.Errorf("%w: %q: no path", ErrInvalid, raw)
	}
	return loc, nil
}

func parseDockerArchive(raw, s string) (Location, error) {
	drive, rest := splitDrive(s)
	loc := Location{Kind: DockerArchive, Raw: raw}
	if i := strings.Index(rest, ":"); i >= 0 {
		ref := rest[i+1:]
		rest = rest[:i]
		if ref != "" {
			if _, err := name.NewTag(ref); err != nil {
				return Location{}, fmt.Errorf("%w: %q: %q is not a REPO:TAG reference: %v", ErrInvalid, raw, ref, err)
			}
			loc.Tag = ref
		}
	}
	loc.Path = drive + rest
	if rest == "" {
		return Location{}, fmt.Errorf("%w: %q: no file", ErrInvalid, raw)
	}
	return loc, nil
}

// String returns the location in canonical form.
func (l Location) String() string {
	switch l.Kind {
	case Registry:
		if l.Ref != nil {
			return l.Ref.String()
		}
	case OCILayout, OCIArchive:
		s := l.Kind.String() + ":" + l.Path
		if l.Digest != "" {
			return s + "@" + l.Digest
		}
		if l.Tag != "" {
			s += ":" + l.Tag
		}
		return s
	case DockerArchive:
		s := "docker-archive:" + l.Path
		if l.Tag != "" {
			s += ":" + l.Tag
		}
		return s
	}
	return l.Raw
}

// IsLocal reports whether the location is a file or directory.
func (l Location) IsLocal() bool { return l.Kind != Registry }

// IsLoopbackHost reports whether host (with or without port) is localhost
// or a loopback address.
func IsLoopbackHost(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
