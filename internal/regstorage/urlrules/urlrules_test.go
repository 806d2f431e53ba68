package urlrules

import (
	"errors"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	type build func([]string, []string) (*Rules, error)
	cases := []struct {
		name        string
		build       build
		allow, deny []string
		url         string
		want        Reason // 0: allowed
		patterns    []string
	}{
		{"allow only: match", New, []string{`^https://`}, nil, "https://cdn.example/x", 0, nil},
		{"allow only: no match", New, []string{`^https://`}, nil, "http://cdn.example/x", NotAllowed, []string{`^https://`}},
		{"allow only: any of several", New, []string{`^https://a\.example/`, `^https://b\.example/`}, nil, "https://b.example/x", 0, nil},
		{"allow only: none of several", New, []string{`^https://a\.example/`, `^https://b\.example/`}, nil, "https://c.example/x", NotAllowed, []string{`^https://a\.example/`, `^https://b\.example/`}},
		{"patterns are not anchored", New, []string{`cdn\.example`}, nil, "https://cdn.example/x", 0, nil},
		{"deny only: match", New, nil, []string{`evil\.example`}, "https://evil.example/x", Denied, []string{`evil\.example`}},
		{"deny only: no match", New, nil, []string{`evil\.example`}, "http://cdn.example/x", 0, nil},
		{"both: allowed, not denied", New, []string{`^https://`}, []string{`evil\.example`}, "https://cdn.example/x", 0, nil},
		{"both: allowed and denied", New, []string{`^https://`}, []string{`evil\.example`}, "https://evil.example/x", Denied, []string{`evil\.example`}},
		{"both: not allowed comes first", New, []string{`^https://`}, []string{`evil\.example`}, "http://evil.example/x", NotAllowed, []string{`^https://`}},
		{"a pattern's flags stay in it", New, []string{`(?i)^https://a\.example/`, `^https://b\.example/`}, nil, "https://B.example/x", NotAllowed, []string{`(?i)^https://a\.example/`, `^https://b\.example/`}},
		{"storage: no lists, any http(s) URL", New, nil, nil, "http://cdn.example/x", 0, nil},
		{"storage: empty lists, any http(s) URL", New, []string{}, []string{}, "https://cdn.example/x", 0, nil},
		{"config: no lists, nothing allowed", FromConfig, nil, nil, "https://cdn.example/x", NoneAllowed, nil},
		{"config: empty lists, nothing allowed", FromConfig, []string{}, []string{}, "https://cdn.example/x", NoneAllowed, nil},
		{"config: deny only allows the rest", FromConfig, nil, []string{`evil\.example`}, "https://cdn.example/x", 0, nil},
		{"config: allow only", FromConfig, []string{`^https://`}, nil, "http://cdn.example/x", NotAllowed, []string{`^https://`}},
		{"scheme before the lists", New, []string{`.`}, nil, "ftp://cdn.example/x", BadScheme, nil},
		{"no scheme", New, nil, nil, "cdn.example/x", BadScheme, nil},
		{"fragment", New, []string{`.`}, nil, "https://cdn.example/x#y", Fragment, nil},
		{"unparsable", New, []string{`.`}, nil, "https://cdn.example/%zz", Unparsable, nil},
		{"config: scheme before nothing allowed", FromConfig, nil, nil, "ftp://cdn.example/x", BadScheme, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tc.build(tc.allow, tc.deny)
			if err != nil {
				t.Fatal(err)
			}
			err = r.Check(tc.url)
			if tc.want == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			ref, ok := errors.AsType[*Refusal](err)
			if !ok {
				t.Fatalf("got %v, want a *Refusal", err)
			}
			if ref.Reason != tc.want || ref.URL != tc.url || !slices.Equal(ref.Patterns, tc.patterns) {
				t.Errorf("got %+v, want reason %d, URL %s, patterns %q", *ref, tc.want, tc.url, tc.patterns)
			}
			if !strings.Contains(ref.Error(), tc.url) {
				t.Errorf("message %q does not name the URL", ref.Error())
			}
		})
	}
}

func TestRefusalMessages(t *testing.T) {
	cases := []struct {
		r    Refusal
		want string
	}{
		{Refusal{URL: "u", Reason: Unparsable}, "URL u does not parse"},
		{Refusal{URL: "u", Reason: BadScheme}, "URL u is neither http nor https"},
		{Refusal{URL: "u", Reason: Fragment}, "URL u has a fragment"},
		{Refusal{URL: "u", Reason: NoneAllowed}, "URL u is refused: no foreign URLs are allowed"},
		{Refusal{URL: "u", Reason: NotAllowed, Patterns: []string{"a", "b"}}, "URL u is not allowed (allowed: a, b)"},
		{Refusal{URL: "u", Reason: Denied, Patterns: []string{"c"}}, "URL u is denied (denied: c)"},
	}
	for _, tc := range cases {
		if got := tc.r.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestPatternsDoNotCompile(t *testing.T) {
	for _, build := range []struct {
		name string
		fn   func([]string, []string) (*Rules, error)
	}{{"New", New}, {"FromConfig", FromConfig}} {
		cases := []struct {
			name, list, pattern string
			allow, deny         []string
		}{
			{"allow", "allow", "(", []string{`^https://`, "("}, nil},
			{"deny", "deny", "[a-", nil, []string{"[a-"}},
			{"allow reported first", "allow", "(", []string{"("}, []string{"[a-"}},
		}
		for _, tc := range cases {
			t.Run(build.name+"/"+tc.name, func(t *testing.T) {
				r, err := build.fn(tc.allow, tc.deny)
				if err == nil {
					t.Fatalf("accepted: %+v", r)
				}
				pe, ok := errors.AsType[*PatternError](err)
				if !ok {
					t.Fatalf("got %T %v, want a *PatternError", err, err)
				}
				if pe.List != tc.list || pe.Pattern != tc.pattern {
					t.Errorf("got list %q pattern %q, want %q %q", pe.List, pe.Pattern, tc.list, tc.pattern)
				}
				if _, ok := errors.AsType[*syntax.Error](err); !ok {
					t.Errorf("%v does not wrap the regexp error", err)
				}
				if want := `foreign URL pattern "` + tc.pattern + `": error parsing regexp`; !strings.HasPrefix(err.Error(), want) {
					t.Errorf("message %q, want it to start with %q", err, want)
				}
			})
		}
	}
}

func TestNilRules(t *testing.T) {
	var r *Rules
	if r.AllowRegexp() != nil || r.DenyRegexp() != nil {
		t.Error("a nil *Rules has expressions")
	}
	if err := r.Check("https://cdn.example/x"); err != nil {
		t.Errorf("refused: %v", err)
	}
	if err := r.Check("ftp://cdn.example/x"); err == nil {
		t.Error("a nil *Rules accepts ftp")
	}
}

func TestRegexpsForDistribution(t *testing.T) {
	r, err := New([]string{`^https://a`, `b$`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.AllowRegexp().String(), `(?:^https://a)|(?:b$)`; got != want {
		t.Errorf("allow expression %q, want %q (distribution's join)", got, want)
	}
	if r.DenyRegexp() != nil {
		t.Error("deny expression without a deny list")
	}
	c, err := FromConfig(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.AllowRegexp().String(); got != "^$" {
		t.Errorf("allow expression with neither list %q, want distribution's ^$", got)
	}
}
