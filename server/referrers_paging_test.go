package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-dev/ferry/server"
)

var nextLink = regexp.MustCompile(`^<([^>]+)>; rel="next"$`)

// referrerPages follows the referrers API's Link headers from path and
// returns each page's descriptors.
func (r *reg) referrerPages(path string) [][]ocispec.Descriptor {
	r.t.Helper()
	var pages [][]ocispec.Descriptor
	for path != "" {
		if len(pages) > 100 {
			r.t.Fatal("more than 100 referrers pages: the Link headers loop")
		}
		resp, body := r.do(http.MethodGet, path, nil)
		r.want(resp, body, http.StatusOK)
		var idx ocispec.Index
		if err := json.Unmarshal(body, &idx); err != nil || idx.MediaType != ocispec.MediaTypeImageIndex {
			r.t.Fatalf("GET %s: %s is not an image index (%v)", path, body, err)
		}
		pages = append(pages, idx.Manifests)
		path = ""
		if link := resp.Header.Get("Link"); link != "" {
			m := nextLink.FindStringSubmatch(link)
			if m == nil || !strings.HasPrefix(m[1], "/v2/") {
				r.t.Fatalf("GET %s: Link %q is not <path>; rel=\"next\"", resp.Request.URL, link)
			}
			path = m[1]
		}
	}
	return pages
}

func TestReferrersPaging(t *testing.T) {
	r := newReg(t)
	const repo = "refs/many"
	_, subject := r.pushManifest(repo, "v1", r.image(repo, "subject"))
	var all, sboms []digest.Digest
	for i := range 25 {
		at := []string{"application/vnd.example.sbom", "application/vnd.example.sig"}[i%2]
		_, d := r.pushManifest(repo, "", r.artifact(repo, at, &subject, map[string]string{"i": fmt.Sprint(i)}))
		all = append(all, d.Digest)
		if i%2 == 0 {
			sboms = append(sboms, d.Digest)
		}
	}
	slices.Sort(all)
	slices.Sort(sboms)
	digests := func(pages [][]ocispec.Descriptor) (sizes []int, ds []digest.Digest) {
		for _, p := range pages {
			sizes = append(sizes, len(p))
			for _, d := range p {
				ds = append(ds, d.Digest)
			}
		}
		return sizes, ds
	}
	base := "/v2/" + repo + "/referrers/" + subject.Digest.String()

	// n pages as the client asks; Link until the last page.
	sizes, ds := digests(r.referrerPages(base + "?n=10"))
	if !slices.Equal(sizes, []int{10, 10, 5}) || !slices.Equal(ds, all) {
		t.Errorf("pages of n=10: sizes %v, digests %v; want 10, 10, 5 of %v in order", sizes, ds, all)
	}
	// The filter goes on in the Link.
	sizes, ds = digests(r.referrerPages(base + "?n=5&artifactType=application/vnd.example.sbom"))
	if !slices.Equal(sizes, []int{5, 5, 3}) || !slices.Equal(ds, sboms) {
		t.Errorf("filtered pages of n=5: sizes %v, digests %v; want 5, 5, 3 of %v", sizes, ds, sboms)
	}
	// Without n, the registry's own page size.
	server.SetReferrersPageSize(t, 7)
	sizes, ds = digests(r.referrerPages(base))
	if !slices.Equal(sizes, []int{7, 7, 7, 4}) || !slices.Equal(ds, all) {
		t.Errorf("pages of the registry's size 7: sizes %v; want 7, 7, 7, 4 of all", sizes)
	}
	// Everything in one response when it fits: no Link.
	server.SetReferrersPageSize(t, 1000)
	if pages := r.referrerPages(base); len(pages) != 1 || len(pages[0]) != 25 {
		t.Errorf("one page expected, got %d", len(pages))
	}
	// n=0 is an empty page; a bad n or last is refused.
	if pages := r.referrerPages(base + "?n=0"); len(pages) != 1 || len(pages[0]) != 0 {
		t.Errorf("n=0: %v, want one empty page", pages)
	}
	resp, body := r.do(http.MethodGet, base+"?n=-1", nil)
	r.wantError(resp, body, http.StatusBadRequest, "PAGINATION_NUMBER_INVALID")
	resp, body = r.do(http.MethodGet, base+"?last=nope", nil)
	r.wantError(resp, body, http.StatusBadRequest, "DIGEST_INVALID")
}

// A list that would not fit in one manifest is paged by size.
func TestReferrersPagingBySize(t *testing.T) {
	r := newReg(t)
	const repo = "refs/large"
	_, subject := r.pushManifest(repo, "v1", r.image(repo, "subject"))
	big := strings.Repeat("x", 1<<20)
	for i := range 5 {
		r.pushManifest(repo, "", r.artifact(repo, "application/vnd.example.sig", &subject, map[string]string{"big": big, "i": fmt.Sprint(i)}))
	}
	pages := r.referrerPages("/v2/" + repo + "/referrers/" + subject.Digest.String())
	n := 0
	for _, p := range pages {
		n += len(p)
		if len(p) > 3 {
			t.Errorf("a page of %d descriptors of 1 MiB each: more than a manifest may hold", len(p))
		}
	}
	if len(pages) < 2 || n != 5 {
		t.Errorf("%d pages of %d descriptors in all, want at least 2 pages of 5 in all", len(pages), n)
	}
}
