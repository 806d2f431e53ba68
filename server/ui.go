package server

// This file is the read-only web view `ferry serve` answers at / and /ui/
// (issue 21): server-side rendered pages, every one also JSON with
// Accept: application/json. It reads through distribution's storage
// namespace, the one the registry serves, and loads no blob but manifests
// and image configs. For a mirror it also shows where each repository
// came from (ui_mirror.go).

import (
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/auth"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-dev/ferry/internal/regstorage/aliaslinks"
	"github.com/ferry-dev/ferry/internal/regstorage/storedmanifest"
	"github.com/ferry-dev/ferry/internal/units"
	"github.com/ferry-dev/ferry/mediatype"
	"github.com/ferry-dev/ferry/platform"
)

//go:embed ui/templates/*.html ui/static/*
var uiFiles embed.FS

// uiPageSize is how many repositories or tags a page lists unless ?n= says
// fewer (at most uiMaxPage).
const (
	uiPageSize = 100
	uiMaxPage  = 1000
	// uiMaxConfig bounds an image config read to render a page.
	uiMaxConfig = 4 << 20
)

// WithUI turns the read-only web view at / and /ui/ on or off (on by
// default).
func WithUI(enabled bool) Option {
	return func(o *options) error { o.noUI = !enabled; return nil }
}

// webUI serves the web view; every other request goes to next.
type webUI struct {
	next   http.Handler
	oci    *ociLayer // the namespace, access controller and referrers lister
	mirror *mirror   // nil unless the registry is a mirror
	pages  map[string]*template.Template
	static http.Handler
}

func newWebUI(next http.Handler, oci *ociLayer, m *mirror) (*webUI, error) {
	u := &webUI{next: next, oci: oci, mirror: m, pages: map[string]*template.Template{}}
	funcs := template.FuncMap{"size": units.Bytes, "short": shortDigest, "path": url.PathEscape}
	for _, p := range []string{"repos", "tags", "manifest"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(uiFiles, "ui/templates/layout.html", "ui/templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("server: web view template %s: %w", p, err)
		}
		u.pages[p] = t
	}
	static, err := fs.Sub(uiFiles, "ui/static")
	if err != nil {
		return nil, fmt.Errorf("server: web view assets: %w", err)
	}
	u.static = http.StripPrefix("/ui/static/", http.FileServerFS(static))
	return u, nil
}

// ServeHTTP implements http.Handler.
func (u *webUI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p != "/" && p != "/ui" && !strings.HasPrefix(p, "/ui/") {
		u.next.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the web view is read-only", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'")
	if strings.HasPrefix(p, "/ui/static/") {
		// Style only: nothing the registry holds, so no login needed,
		// and nothing the mirror stores to wait for.
		u.static.ServeHTTP(w, r)
		return
	}
	// A mirror's pages show what its clients have been served: the
	// manifests and tags it stores in the background are waited for.
	u.mirror.settled(r.Context())
	switch {
	case p == "/" || p == "/ui" || p == "/ui/":
		if u.allowed(w, r, auth.Access{Resource: auth.Resource{Type: "registry", Name: "catalog"}, Action: "*"}) {
			u.repos(w, r)
		}
	case strings.HasPrefix(p, "/ui/r/"):
		u.repo(w, r, strings.TrimPrefix(p, "/ui/r/"))
	case strings.HasPrefix(p, "/ui/m/"):
		u.manifestPage(w, r, strings.TrimPrefix(p, "/ui/m/"))
	default:
		u.fail(w, r, http.StatusNotFound, "no such page: "+p)
	}
}

// allowed asks the registry's access controller, the one the API uses,
// for access, answering 401 with its challenge when refused.
func (u *webUI) allowed(w http.ResponseWriter, r *http.Request, access ...auth.Access) bool {
	if u.oci.access == nil {
		return true
	}
	_, err := u.oci.access.Authorized(r, access...)
	if err == nil {
		return true
	}
	var ch auth.Challenge
	if errors.As(err, &ch) {
		ch.SetHeaders(r, w)
		u.fail(w, r, http.StatusUnauthorized, "authentication required")
		return false
	}
	u.fail(w, r, http.StatusBadRequest, "authorization failed")
	return false
}

func pullAccess(name string) auth.Access {
	return auth.Access{Resource: auth.Resource{Type: "repository", Name: name}, Action: "pull"}
}

// wantsJSON reports whether the client asked for JSON.
func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

// uiError is an error page's data.
type uiError struct {
	Status int    `json:"status"`
	Error  string `json:"error"`
}

func (u *webUI) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(uiError{Status: status, Error: msg})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "%d %s: %s\n", status, http.StatusText(status), msg)
}

// render writes data as JSON or through the page's template.
func (u *webUI) render(w http.ResponseWriter, r *http.Request, page string, data any) {
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(data)
		return
	}
	var b strings.Builder
	if err := u.pages[page].Execute(&b, struct {
		Page any
		Host string
	}{data, r.Host}); err != nil {
		u.fail(w, r, http.StatusInternalServerError, "rendering failed")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = io.WriteString(w, b.String())
}

// pageSize reads ?n=, defaulting to uiPageSize.
func pageSize(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil || n <= 0 {
		return uiPageSize
	}
	return min(n, uiMaxPage)
}

// reposPage is the repository list.
type reposPage struct {
	Filter       string   `json:"filter,omitempty"`
	Repositories []string `json:"repositories"`
	// Next is the ?last= of the next page; "" on the last page.
	Next string `json:"next,omitempty"`
	// MirrorOf lists a mirror's upstreams; Upstream gives, by
	// repository, the one it came from.
	MirrorOf []uiUpstream           `json:"mirrorOf,omitempty"`
	Upstream map[string]*uiUpstream `json:"upstream,omitempty"`
}

func (u *webUI) repos(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page := reposPage{Filter: q.Get("q"), Repositories: []string{}, MirrorOf: u.mirror.upstreamList()}
	n, last := pageSize(r), q.Get("last")
	buf := make([]string, max(n, 100))
	// The catalog is walked a batch at a time until a page of names
	// matching the filter is full.
	more := false
walk:
	for {
		k, err := u.oci.ns.Repositories(r.Context(), buf, last)
		for i, name := range buf[:k] {
			last = name
			if !strings.Contains(name, page.Filter) {
				continue
			}
			page.Repositories = append(page.Repositories, name)
			if len(page.Repositories) == n {
				more = i < k-1 || err == nil
				break walk
			}
		}
		if errors.Is(err, io.EOF) || k == 0 {
			break
		}
		if err != nil {
			u.fail(w, r, http.StatusServiceUnavailable, "the catalog cannot be read")
			return
		}
	}
	if more {
		page.Next = last
	}
	for _, name := range page.Repositories {
		if o := u.mirror.origin(name); o != nil {
			if page.Upstream == nil {
				page.Upstream = map[string]*uiUpstream{}
			}
			page.Upstream[name] = o
		}
	}
	u.render(w, r, "repos", page)
}

// tagsPage is a repository's tags.
type tagsPage struct {
	Repository string   `json:"repository"`
	Tags       []string `json:"tags"`
	Next       string   `json:"next,omitempty"`
	// Upstream is where a mirror's repository came from; LastChecked
	// gives, by tag, when the mirror last checked it upstream (RFC 3339;
	// tags not checked since the server started are absent).
	Upstream    *uiUpstream       `json:"upstream,omitempty"`
	LastChecked map[string]string `json:"lastChecked,omitempty"`
}

func (u *webUI) repo(w http.ResponseWriter, r *http.Request, name string) {
	named, err := reference.WithName(name)
	if err != nil {
		u.fail(w, r, http.StatusBadRequest, fmt.Sprintf("%q is not a repository name", name))
		return
	}
	if !u.allowed(w, r, pullAccess(name)) {
		return
	}
	repo, err := u.oci.ns.Repository(r.Context(), named)
	if err != nil {
		u.fail(w, r, http.StatusNotFound, "no repository "+name)
		return
	}
	n := pageSize(r)
	tags, err := repo.Tags(r.Context()).List(r.Context(), n+1, r.URL.Query().Get("last"))
	var unknown distribution.ErrRepositoryUnknown
	if errors.As(err, &unknown) || (err != nil && len(tags) == 0 && r.URL.Query().Get("last") == "") {
		u.fail(w, r, http.StatusNotFound, "no repository "+name)
		return
	}
	if err != nil && !errors.Is(err, io.EOF) {
		u.fail(w, r, http.StatusServiceUnavailable, "the tags of "+name+" cannot be read")
		return
	}
	page := tagsPage{Repository: name, Tags: tags, Upstream: u.mirror.origin(name)}
	if len(tags) > n {
		page.Tags = tags[:n]
		page.Next = tags[n-1]
	}
	for _, tag := range page.Tags {
		if at, ok := u.mirror.lastChecked(name, tag); ok {
			if page.LastChecked == nil {
				page.LastChecked = map[string]string{}
			}
			page.LastChecked[tag] = at.UTC().Format(time.RFC3339)
		}
	}
	u.render(w, r, "tags", page)
}

// manifestPage is a tag or digest: an index or an image.
type manifestPage struct {
	Repository string        `json:"repository"`
	Tag        string        `json:"tag,omitempty"`
	Digest     digest.Digest `json:"digest"`
	MediaType  string        `json:"mediaType"`
	// Size is the manifest's own size; TotalSize adds what it references
	// (for an index, each platform's total).
	Size      int64         `json:"size"`
	TotalSize int64         `json:"totalSize"`
	Platforms []uiPlatform  `json:"platforms,omitempty"`
	Image     *uiImage      `json:"image,omitempty"`
	Referrers []uiReferrers `json:"referrers"`
	Pull      []string      `json:"pull"`
	// Upstream is where a mirror's repository came from; LocalizedAs is
	// the localized manifest a mirror with --proxy-foreign localize
	// serves for this one, when it has derived it since it started.
	Upstream    *uiUpstream   `json:"upstream,omitempty"`
	LocalizedAs digest.Digest `json:"localizedAs,omitempty"`
}

// uiPlatform is one entry of an index.
type uiPlatform struct {
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"mediaType"`
	OS        string        `json:"os,omitempty"`
	Arch      string        `json:"architecture,omitempty"`
	Variant   string        `json:"variant,omitempty"`
	OSVersion string        `json:"os.version,omitempty"`
	// Release is the Windows release OSVersion's build is, e.g.
	// "ltsc2022" for 10.0.20348.*.
	Release      string `json:"release,omitempty"`
	Size         int64  `json:"size"`
	TotalSize    int64  `json:"totalSize"`
	ArtifactType string `json:"artifactType,omitempty"`
	// Cached says whether the registry holds the platform's manifest;
	// LayersCached of Layers of its layers' blobs are held.
	Cached       bool `json:"cached"`
	Layers       int  `json:"layers"`
	LayersCached int  `json:"layersCached"`
}

// uiImage is what an image manifest and its config say.
type uiImage struct {
	ConfigDigest digest.Digest     `json:"configDigest"`
	Created      string            `json:"created,omitempty"`
	OS           string            `json:"os,omitempty"`
	Arch         string            `json:"architecture,omitempty"`
	OSVersion    string            `json:"os.version,omitempty"`
	Release      string            `json:"release,omitempty"`
	Entrypoint   []string          `json:"entrypoint,omitempty"`
	Cmd          []string          `json:"cmd,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Layers       []uiLayer         `json:"layers"`
	History      []uiHistory       `json:"history,omitempty"`
}

// uiLayer is one layer; Blob says whether the registry holds its bytes:
// "cached", "missing" (for a foreign layer that is normal, its bytes being
// at its urls) or, for a foreign layer a mirror holds and serves as an
// ordinary one (--proxy-foreign localize), "localized".
type uiLayer struct {
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"mediaType"`
	Size      int64         `json:"size"`
	Foreign   bool          `json:"foreign"`
	URLs      []string      `json:"urls,omitempty"`
	Blob      string        `json:"blob"`
}

type uiHistory struct {
	Created    string `json:"created,omitempty"`
	CreatedBy  string `json:"createdBy,omitempty"`
	Comment    string `json:"comment,omitempty"`
	EmptyLayer bool   `json:"emptyLayer,omitempty"`
}

// uiReferrers groups the manifests whose subject this is by artifactType.
type uiReferrers struct {
	ArtifactType string          `json:"artifactType"`
	Manifests    []digest.Digest `json:"manifests"`
}

// rawManifest is the union of the fields of an image manifest and an
// index that the page shows.
type rawManifest struct {
	MediaType    string               `json:"mediaType"`
	Config       ocispec.Descriptor   `json:"config"`
	Layers       []ocispec.Descriptor `json:"layers"`
	Manifests    []ocispec.Descriptor `json:"manifests"`
	Annotations  map[string]string    `json:"annotations"`
	ArtifactType string               `json:"artifactType"`
}

// splitRef splits "name:tag" or "name@digest".
func splitRef(s string) (name, tag string, d digest.Digest, err error) {
	if i := strings.LastIndex(s, "@"); i >= 0 {
		d, err = digest.Parse(s[i+1:])
		return s[:i], "", d, err
	}
	i := strings.LastIndex(s, ":")
	if i < 0 || strings.Contains(s[i:], "/") {
		return "", "", "", errors.New("no tag or digest")
	}
	return s[:i], s[i+1:], "", nil
}

func (u *webUI) manifestPage(w http.ResponseWriter, r *http.Request, ref string) {
	name, tag, d, err := splitRef(ref)
	var named reference.Named
	if err == nil {
		named, err = reference.WithName(name)
	}
	if err == nil && tag != "" {
		_, err = reference.WithTag(named, tag)
	}
	if err != nil {
		u.fail(w, r, http.StatusBadRequest, fmt.Sprintf("%q is not NAME:TAG or NAME@DIGEST", ref))
		return
	}
	if !u.allowed(w, r, pullAccess(name)) {
		return
	}
	ctx := r.Context()
	repo, err := u.oci.ns.Repository(ctx, named)
	if err != nil {
		u.fail(w, r, http.StatusNotFound, "no repository "+name)
		return
	}
	if tag != "" {
		desc, err := repo.Tags(ctx).Get(ctx, tag)
		if err != nil {
			u.fail(w, r, http.StatusNotFound, fmt.Sprintf("no tag %s in %s", tag, name))
			return
		}
		d = desc.Digest
	}
	page := manifestPage{Repository: name, Tag: tag, Digest: d, Referrers: []uiReferrers{}, Upstream: u.mirror.origin(name)}
	m, size, ok := u.readManifest(ctx, repo, d)
	if !ok {
		u.fail(w, r, http.StatusNotFound, fmt.Sprintf("no manifest %s in %s", d, name))
		return
	}
	page.MediaType, page.Size = m.MediaType, size
	if len(m.Manifests) > 0 || m.MediaType == ocispec.MediaTypeImageIndex || m.MediaType == "application/vnd.docker.distribution.manifest.list.v2+json" {
		page.TotalSize = size
		for _, c := range m.Manifests {
			p := uiPlatform{Digest: c.Digest, MediaType: c.MediaType, Size: c.Size, TotalSize: c.Size, ArtifactType: c.ArtifactType}
			if c.Platform != nil {
				p.OS, p.Arch, p.Variant, p.OSVersion = c.Platform.OS, c.Platform.Architecture, c.Platform.Variant, c.Platform.OSVersion
				p.Release = windowsRelease(p.OSVersion)
			}
			if cm, _, ok := u.readManifest(ctx, repo, c.Digest); ok {
				p.TotalSize += cm.Config.Size + layersSize(cm.Layers)
				p.Cached, p.Layers = true, len(cm.Layers)
				for _, l := range cm.Layers {
					if u.held(ctx, repo, l.Digest) {
						p.LayersCached++
					}
				}
			}
			page.TotalSize += p.TotalSize
			page.Platforms = append(page.Platforms, p)
		}
	} else {
		page.Image = u.image(ctx, repo, m)
		page.TotalSize = size + m.Config.Size + layersSize(m.Layers)
	}
	if refs, err := u.oci.list(ctx, named, d); err == nil {
		page.Referrers = groupReferrers(refs)
	}
	page.LocalizedAs, _ = u.mirror.localizedAs(name, d)
	page.Pull = pullLines(r.Host, name, tag, d)
	u.render(w, r, "manifest", page)
}

// readManifest reads manifest d if the repository links it. A digest
// other than sha256 (a push by sha512, or a tag its tag parameters set)
// is read as the canonical digest its alias link names, under which
// distribution stores the bytes.
func (u *webUI) readManifest(ctx context.Context, repo distribution.Repository, d digest.Digest) (rawManifest, int64, bool) {
	ms, err := repo.Manifests(ctx)
	if err != nil {
		return rawManifest{}, 0, false
	}
	if ok, err := ms.Exists(ctx, d); err != nil || !ok {
		return rawManifest{}, 0, false
	}
	if d.Algorithm() != digest.Canonical {
		if d, err = aliaslinks.Read(ctx, u.oci.driver, repo.Named().Name(), aliaslinks.Revisions, d); err != nil {
			return rawManifest{}, 0, false
		}
	}
	payload, err := storedmanifest.Read(ctx, u.oci.ns, d)
	if err != nil {
		return rawManifest{}, 0, false
	}
	var m rawManifest
	if json.Unmarshal(payload, &m) != nil {
		return rawManifest{}, 0, false
	}
	m.MediaType = cmp.Or(m.MediaType, storedMediaType(payload))
	return m, int64(len(payload)), true
}

// image fills an image's summary from its manifest and config; blobs are
// only stat'ed.
func (u *webUI) image(ctx context.Context, repo distribution.Repository, m rawManifest) *uiImage {
	img := &uiImage{ConfigDigest: m.Config.Digest, Annotations: m.Annotations, Layers: []uiLayer{}}
	blobs := repo.Blobs(ctx)
	for _, l := range m.Layers {
		ul := uiLayer{Digest: l.Digest, MediaType: l.MediaType, Size: l.Size, URLs: l.URLs, Foreign: mediatype.IsForeign(l.MediaType), Blob: "missing"}
		if u.held(ctx, repo, l.Digest) {
			ul.Blob = "cached"
			if ul.Foreign && u.mirror.localizes() {
				ul.Blob = "localized"
			}
		}
		img.Layers = append(img.Layers, ul)
	}
	if m.Config.Size <= 0 || m.Config.Size > uiMaxConfig {
		return img
	}
	b, err := blobs.Get(ctx, m.Config.Digest)
	var c ocispec.Image
	if err != nil || json.Unmarshal(b, &c) != nil {
		return img
	}
	if c.Created != nil {
		img.Created = c.Created.UTC().Format(time.RFC3339)
	}
	img.OS, img.Arch, img.OSVersion, img.Release = c.OS, c.Architecture, c.OSVersion, windowsRelease(c.OSVersion)
	img.Entrypoint, img.Cmd, img.Labels = c.Config.Entrypoint, c.Config.Cmd, c.Config.Labels
	for _, h := range c.History {
		uh := uiHistory{CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer}
		if h.Created != nil {
			uh.Created = h.Created.UTC().Format(time.RFC3339)
		}
		img.History = append(img.History, uh)
	}
	return img
}

// held reports whether the repository links blob d (a stat, no read).
func (u *webUI) held(ctx context.Context, repo distribution.Repository, d digest.Digest) bool {
	_, err := repo.Blobs(ctx).Stat(ctx, d)
	return err == nil
}

// windowsRelease names the Windows release of os.version v by its build
// (platform.Aliases), an LTSC name first; "" when none is known.
func windowsRelease(v string) string {
	var names []string
	for name, build := range platform.Aliases {
		if v == build || strings.HasPrefix(v, build+".") {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(b[0], a[0]), strings.Compare(a, b)) // "ltsc…" before "1809"
	})
	if len(names) == 0 {
		return ""
	}
	return names[0]
}

func layersSize(ls []ocispec.Descriptor) int64 {
	var n int64
	for _, l := range ls {
		n += l.Size
	}
	return n
}

func groupReferrers(refs []ocispec.Descriptor) []uiReferrers {
	out := []uiReferrers{}
	for _, d := range refs {
		t := cmp.Or(d.ArtifactType, d.MediaType)
		i := slices.IndexFunc(out, func(g uiReferrers) bool { return g.ArtifactType == t })
		if i < 0 {
			out = append(out, uiReferrers{ArtifactType: t})
			i = len(out) - 1
		}
		out[i].Manifests = append(out[i].Manifests, d.Digest)
	}
	slices.SortFunc(out, func(a, b uiReferrers) int { return strings.Compare(a.ArtifactType, b.ArtifactType) })
	return out
}

// pullLines are the command lines that pull the reference from host:
// ferry into an OCI layout named after the repository, docker, and crane
// into a tarball.
func pullLines(host, name, tag string, d digest.Digest) []string {
	ref, local := host+"/"+name+"@"+d.String(), name[strings.LastIndex(name, "/")+1:]
	layout := "oci:./" + local
	if tag != "" {
		ref = host + "/" + name + ":" + tag
		layout += ":" + tag
	}
	return []string{
		"ferry copy " + ref + " " + layout,
		"docker pull " + ref,
		"crane pull " + ref + " " + local + ".tar",
	}
}

func shortDigest(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > 12 {
		e = e[:12]
	}
	return d.Algorithm().String() + ":" + e
}
