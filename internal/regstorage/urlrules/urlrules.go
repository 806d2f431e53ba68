// Package urlrules is distribution's rule for the URLs a manifest's foreign
// (non-distributable) layers may carry: the validation.manifests.urls allow
// and deny lists of a registry's configuration. ferry serve checks pushed
// manifests against them to name the URL and the rule it breaks, and a
// storage root opened offline (store/regroot) hands the same compiled
// expressions to distribution's storage package.
//
// It is not the client-side policy of package foreign, which decides which
// URLs ferry itself will fetch from.
package urlrules

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Reason says why Check refused a URL.
type Reason int

// The reasons a URL is refused, in the order distribution checks them.
const (
	// Unparsable: the URL does not parse.
	Unparsable Reason = iota + 1
	// BadScheme: the scheme is neither http nor https.
	BadScheme
	// Fragment: the URL has a fragment.
	Fragment
	// NoneAllowed: the rules allow no URL at all (both lists were empty
	// in a registry configuration, see FromConfig).
	NoneAllowed
	// NotAllowed: no allow pattern matches the URL.
	NotAllowed
	// Denied: a deny pattern matches the URL.
	Denied
)

// Refusal is the error Check returns for a URL the rules refuse.
type Refusal struct {
	// URL is the refused URL.
	URL string
	// Reason is why it is refused.
	Reason Reason
	// Patterns is the list that refused it, as given: the allow list
	// (NotAllowed) or the deny list (Denied); nil for other reasons.
	Patterns []string
}

// Error implements error.
func (e *Refusal) Error() string {
	var why string
	switch e.Reason {
	case Unparsable:
		why = "does not parse"
	case BadScheme:
		why = "is neither http nor https"
	case Fragment:
		why = "has a fragment"
	case NoneAllowed:
		why = "is refused: no foreign URLs are allowed"
	case NotAllowed:
		why = "is not allowed (allowed: " + strings.Join(e.Patterns, ", ") + ")"
	case Denied:
		why = "is denied (denied: " + strings.Join(e.Patterns, ", ") + ")"
	default:
		why = "is refused"
	}
	return "URL " + e.URL + " " + why
}

// PatternError is an allow or deny pattern that is not a valid Go regular
// expression.
type PatternError struct {
	// List is "allow" or "deny".
	List string
	// Pattern is the pattern as given.
	Pattern string
	// Err is the regexp package's error.
	Err error
}

// Error implements error.
func (e *PatternError) Error() string {
	return fmt.Sprintf("foreign URL pattern %q: %v", e.Pattern, e.Err)
}

// Unwrap returns the regexp package's error.
func (e *PatternError) Unwrap() error { return e.Err }

// Rules are compiled allow and deny lists. The zero Rules and a nil *Rules
// have neither list: they refuse only URLs that do not parse, are not http
// or https, or have a fragment.
type Rules struct {
	allow, deny       *regexp.Regexp // nil: no such rule
	allowSrc, denySrc []string       // as given, for messages
	noneAllowed       bool
}

// New compiles the lists as distribution's storage package applies them
// (storage.ManifestURLsAllowRegexp and ManifestURLsDenyRegexp): a URL must
// match some allow pattern, when there is one, and no deny pattern. An
// empty list is no rule. Patterns are Go regular expressions, not
// implicitly anchored. A pattern that does not compile is reported as a
// *PatternError, the allow list checked first.
func New(allow, deny []string) (*Rules, error) {
	r := &Rules{
		allowSrc: append([]string(nil), allow...),
		denySrc:  append([]string(nil), deny...),
	}
	var err error
	if r.allow, err = anyOf("allow", allow); err != nil {
		return nil, err
	}
	if r.deny, err = anyOf("deny", deny); err != nil {
		return nil, err
	}
	return r, nil
}

// FromConfig compiles the lists as distribution's registry reads its
// configuration's validation.manifests.urls (registry/handlers, v3.1.2):
// as New does, except that when both lists are empty no URL is allowed.
func FromConfig(allow, deny []string) (*Rules, error) {
	if len(allow) == 0 && len(deny) == 0 {
		// distribution's rule: with neither list, no URL is allowed.
		return &Rules{allow: regexp.MustCompile("^$"), noneAllowed: true}, nil
	}
	return New(allow, deny)
}

// anyOf compiles patterns as one alternation, as distribution does, after
// compiling each on its own so that an error names its pattern; nil for
// none.
func anyOf(list string, patterns []string) (*regexp.Regexp, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	parts := make([]string, len(patterns))
	for i, p := range patterns {
		if _, err := regexp.Compile(p); err != nil {
			return nil, &PatternError{List: list, Pattern: p, Err: err}
		}
		parts[i] = "(?:" + p + ")"
	}
	re, err := regexp.Compile(strings.Join(parts, "|"))
	if err != nil {
		return nil, fmt.Errorf("foreign URL %s patterns together: %w", list, err)
	}
	return re, nil
}

// AllowRegexp is the allow list as one expression, nil when there is none:
// what storage.ManifestURLsAllowRegexp takes.
func (r *Rules) AllowRegexp() *regexp.Regexp {
	if r == nil {
		return nil
	}
	return r.allow
}

// DenyRegexp is the deny list as one expression, nil when there is none:
// what storage.ManifestURLsDenyRegexp takes.
func (r *Rules) DenyRegexp() *regexp.Regexp {
	if r == nil {
		return nil
	}
	return r.deny
}

// Check returns nil when the rules allow u, or a *Refusal saying which
// check refused it. The checks are distribution's, in its order: u parses,
// is http or https, has no fragment, matches the allow list (when there is
// one) and does not match the deny list.
func (r *Rules) Check(u string) error {
	pu, err := url.Parse(u)
	switch {
	case err != nil:
		return &Refusal{URL: u, Reason: Unparsable}
	case pu.Scheme != "http" && pu.Scheme != "https":
		return &Refusal{URL: u, Reason: BadScheme}
	case pu.Fragment != "":
		return &Refusal{URL: u, Reason: Fragment}
	case r == nil:
		return nil
	case r.noneAllowed:
		return &Refusal{URL: u, Reason: NoneAllowed}
	case r.allow != nil && !r.allow.MatchString(u):
		return &Refusal{URL: u, Reason: NotAllowed, Patterns: slices.Clone(r.allowSrc)}
	case r.deny != nil && r.deny.MatchString(u):
		return &Refusal{URL: u, Reason: Denied, Patterns: slices.Clone(r.denySrc)}
	}
	return nil
}
