// Package syncer mirrors many repositories and tags at once, as a sync
// file lists them: skopeo sync's YAML (a key per source registry, with
// images by tag list, "all tags", regular expression or semantic-version
// range) plus ferry's own keys, which skopeo ignores. A run is planned
// first — tags listed, digests resolved, filters applied, destinations
// compared — then executed with images in parallel, every blob moved at
// most once across the run, and a failing image not stopping the others.
package syncer

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/Masterminds/semver/v3"
	"go.yaml.in/yaml/v3"

	"github.com/ferry-dev/ferry/platform"
	"github.com/ferry-dev/ferry/transfer"
)

// ErrConfig is matched (errors.Is) by every error in a sync file's
// content; the message names the file, line and column.
var ErrConfig = errors.New("invalid sync file")

// Config is a parsed sync file.
type Config struct {
	// Registries are the file's top-level keys, in file order.
	Registries []Registry
	// Warnings name the keys neither skopeo nor ferry knows, with their
	// line and column; they are ignored.
	Warnings []string
}

// Registry is one top-level key: a registry host, optionally with a
// repository path prefix (skopeo joins it and each image name with "/").
type Registry struct {
	// Name is the key as written, e.g. "mcr.microsoft.com".
	Name string
	// Repos are the repositories to mirror, in file order: those of
	// images, then of images-by-tag-regex, then of images-by-semver.
	Repos []Repo
	// Username and Password are the credentials key's.
	Username, Password string
	// TLSVerify is tls-verify (default true); false allows plain HTTP.
	TLSVerify bool
	// CertDir is cert-dir.
	CertDir string
	// Settings are ferry's keys at registry level.
	Settings Settings
}

// Repo is one repository of a registry and how its tags are chosen.
type Repo struct {
	// Name is the image name under the registry key, e.g. "windows/servercore".
	Name string
	// Tags are the listed tags or digests (images: [a, b]); with All,
	// every tag (images: []).
	Tags []string
	All  bool
	// Regex selects the tags it matches (images-by-tag-regex).
	Regex *regexp.Regexp
	// Semver selects the tags that are versions within the range
	// (images-by-semver).
	//
	// A repository under several of these keys gets what each selects.
	Semver *semver.Constraints
	// Settings are ferry's keys for this repository (repositories: NAME:),
	// over the registry's.
	Settings Settings
}

// merge adds the selection of more, the same repository under another
// key (images, images-by-tag-regex, images-by-semver), to r's; twice
// under one key is dup's error.
func (r *Repo) merge(more Repo, dup func() error) error {
	listed := len(r.Tags) > 0 || r.All
	if (listed && (len(more.Tags) > 0 || more.All)) || (r.Regex != nil && more.Regex != nil) || (r.Semver != nil && more.Semver != nil) {
		return dup()
	}
	r.Tags, r.All = append(r.Tags, more.Tags...), r.All || more.All
	if more.Regex != nil {
		r.Regex = more.Regex
	}
	if more.Semver != nil {
		r.Semver = more.Semver
	}
	return nil
}

// Settings are ferry's own keys, per registry or per repository; a zero
// field is unset and the wider setting (registry, then command line)
// applies.
type Settings struct {
	Platforms []platform.Spec
	Foreign   *transfer.ForeignPolicy
	Referrers *bool
	// KeepUBR keeps, of the Windows tags of one build, only the KeepUBR
	// highest update revisions (0: all).
	KeepUBR int
}

// over returns o with the fields set in more replaced.
func (o Settings) over(more Settings) Settings {
	if len(more.Platforms) > 0 {
		o.Platforms = more.Platforms
	}
	if more.Foreign != nil {
		o.Foreign = more.Foreign
	}
	if more.Referrers != nil {
		o.Referrers = more.Referrers
	}
	if more.KeepUBR > 0 {
		o.KeepUBR = more.KeepUBR
	}
	return o
}

// parser keeps the file name for messages and collects warnings.
type parser struct {
	file     string
	warnings []string
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("%w: %s:%d:%d: %s", ErrConfig, p.file, n.Line, n.Column, fmt.Sprintf(format, args...))
}

func (p *parser) warn(n *yaml.Node, format string, args ...any) {
	p.warnings = append(p.warnings, fmt.Sprintf("%s:%d:%d: %s", p.file, n.Line, n.Column, fmt.Sprintf(format, args...)))
}

// mapping calls fn for each key and value of the mapping n.
func (p *parser) mapping(n *yaml.Node, what string, fn func(k, v *yaml.Node) error) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return p.errorf(n, "%s must be a mapping", what)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if err := fn(n.Content[i], n.Content[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// decode decodes v into out, errors placed at v.
func (p *parser) decode(k, v *yaml.Node, out any) error {
	if err := v.Decode(out); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return p.errorf(v, "%s: %s", k.Value, strings.Join(te.Errors, "; "))
		}
		return p.errorf(v, "%s: %v", k.Value, err)
	}
	return nil
}

// Parse reads a sync file's content; file names it in messages.
func Parse(file string, data []byte) (*Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// The YAML parser places syntax errors by line only:
		// "yaml: line 3: did not find expected key" becomes FILE:3: ....
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if rest, ok := strings.CutPrefix(msg, "line "); ok {
			if n, m, ok := strings.Cut(rest, ": "); ok {
				return nil, fmt.Errorf("%w: %s:%s: %s", ErrConfig, file, n, m)
			}
		}
		return nil, fmt.Errorf("%w: %s: %s", ErrConfig, file, msg)
	}
	p := &parser{file: file}
	cfg := &Config{}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%w: %s: the file lists no registry", ErrConfig, file)
	}
	err := p.mapping(doc.Content[0], "the file", func(k, v *yaml.Node) error {
		r, err := p.registry(k, v)
		if err != nil {
			return err
		}
		cfg.Registries = append(cfg.Registries, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(cfg.Registries) == 0 {
		return nil, fmt.Errorf("%w: %s: the file lists no registry", ErrConfig, file)
	}
	cfg.Warnings = p.warnings
	return cfg, nil
}

func (p *parser) registry(key, n *yaml.Node) (Registry, error) {
	r := Registry{Name: strings.TrimSuffix(key.Value, "/"), TLSVerify: true}
	if r.Name == "" {
		return r, p.errorf(key, "empty registry name")
	}
	repos := map[string]int{} // name -> index in r.Repos
	add := func(k *yaml.Node, repo Repo) error {
		if i, dup := repos[repo.Name]; dup {
			// In images and images-by-tag-regex, say: skopeo copies
			// what each selects, so the selections add up.
			return r.Repos[i].merge(repo, func() error { return p.errorf(k, "%s/%s is listed twice", r.Name, repo.Name) })
		}
		if repo.Name == "" {
			return p.errorf(k, "empty image name")
		}
		repos[repo.Name] = len(r.Repos)
		r.Repos = append(r.Repos, repo)
		return nil
	}
	var perRepo []struct {
		k *yaml.Node
		o Settings
	}
	err := p.mapping(n, r.Name, func(k, v *yaml.Node) error {
		switch k.Value {
		case "images":
			return p.mapping(v, "images", func(ik, iv *yaml.Node) error {
				var tags []string
				if err := p.decode(ik, iv, &tags); err != nil {
					return err
				}
				return add(ik, Repo{Name: ik.Value, Tags: tags, All: len(tags) == 0})
			})
		case "images-by-tag-regex":
			return p.selectors(v, k.Value, add, func(s string) (Repo, error) {
				re, err := regexp.Compile(s)
				return Repo{Regex: re}, err
			})
		case "images-by-semver":
			return p.selectors(v, k.Value, add, func(s string) (Repo, error) {
				c, err := semver.NewConstraint(s)
				return Repo{Semver: c}, err
			})
		case "credentials":
			var c struct {
				Username string `yaml:"username"`
				Password string `yaml:"password"`
			}
			if err := p.decode(k, v, &c); err != nil {
				return err
			}
			r.Username, r.Password = c.Username, c.Password
			return nil
		case "tls-verify":
			return p.decode(k, v, &r.TLSVerify)
		case "cert-dir":
			return p.decode(k, v, &r.CertDir)
		case "repositories":
			return p.mapping(v, k.Value, func(ik, iv *yaml.Node) error {
				o, err := p.options(iv, r.Name+"/"+ik.Value, false)
				perRepo = append(perRepo, struct {
					k *yaml.Node
					o Settings
				}{ik, o})
				return err
			})
		}
		if isOption(k.Value) {
			o, err := p.options(&yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{k, v}}, r.Name, true)
			r.Settings = r.Settings.over(o)
			return err
		}
		p.warn(k, "%s: unknown key %q, ignored", r.Name, k.Value)
		return nil
	})
	if err != nil {
		return r, err
	}
	for _, pr := range perRepo {
		i, ok := repos[pr.k.Value]
		if !ok {
			return r, p.errorf(pr.k, "repositories: %s is not among %s's images", pr.k.Value, r.Name)
		}
		r.Repos[i].Settings = pr.o
	}
	return r, nil
}

// selectors reads a mapping of image names to one string each (a regular
// expression, a version range), which parse turns into the repository's
// selection.
func (p *parser) selectors(n *yaml.Node, what string, add func(*yaml.Node, Repo) error, parse func(string) (Repo, error)) error {
	return p.mapping(n, what, func(ik, iv *yaml.Node) error {
		var s string
		if err := p.decode(ik, iv, &s); err != nil {
			return err
		}
		repo, err := parse(s)
		if err != nil {
			return p.errorf(iv, "%s: %v", ik.Value, err)
		}
		repo.Name = ik.Value
		return add(ik, repo)
	})
}

// isOption says whether key is one of ferry's own keys.
func isOption(key string) bool {
	switch key {
	case "platforms", "foreign", "referrers", "keep-ubr":
		return true
	}
	return false
}

// options parses ferry's keys in the mapping n; at registry level
// (inline) other keys were dealt with by the caller.
func (p *parser) options(n *yaml.Node, where string, inline bool) (Settings, error) {
	var o Settings
	err := p.mapping(n, where, func(k, v *yaml.Node) error {
		switch k.Value {
		case "platforms":
			var specs []string
			if err := p.decode(k, v, &specs); err != nil {
				return err
			}
			for _, s := range specs {
				sp, err := platform.ParseSpec(s)
				if err != nil {
					return p.errorf(v, "platforms: %v", err)
				}
				o.Platforms = append(o.Platforms, sp)
			}
		case "foreign":
			var s string
			if err := p.decode(k, v, &s); err != nil {
				return err
			}
			pol, err := transfer.ParseForeignPolicy(s)
			if err != nil {
				return p.errorf(v, "foreign: %v", err)
			}
			o.Foreign = &pol
		case "referrers":
			var b bool
			if err := p.decode(k, v, &b); err != nil {
				return err
			}
			o.Referrers = &b
		case "keep-ubr":
			if err := p.decode(k, v, &o.KeepUBR); err != nil {
				return err
			}
			if o.KeepUBR < 1 {
				return p.errorf(v, "keep-ubr must be at least 1, got %d", o.KeepUBR)
			}
		default:
			if !inline {
				p.warn(k, "%s: unknown key %q, ignored (repositories take platforms, foreign, referrers, keep-ubr)", where, k.Value)
			}
		}
		return nil
	})
	return o, err
}
