package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Tags implements store.Lister, following Link pagination.
func (r *Repo) Tags(ctx context.Context) ([]string, error) {
	next := r.url("tags", "list?n=1000")
	var all []string
	for next != "" {
		u := next
		resp, err := r.c.do(ctx, func() (*http.Request, error) {
			return http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		}, http.StatusOK)
		if err != nil {
			return nil, fmt.Errorf("tags of %s: %w", r.repo, err)
		}
		var page struct {
			Tags []string `json:"tags"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, MaxManifestSize)).Decode(&page)
		link := resp.Header.Get("Link")
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("tags of %s: %w", r.repo, err)
		}
		all = append(all, page.Tags...)
		next, err = nextLink(u, link)
		if err != nil {
			return nil, fmt.Errorf("tags of %s: %w", r.repo, err)
		}
	}
	return all, nil
}

// Catalog lists the repositories of a registry, following pagination.
func Catalog(ctx context.Context, reg name.Registry, opts ...Option) ([]string, error) {
	c, err := NewClient(ctx, reg, []string{reg.Scope("")}, opts...)
	if err != nil {
		return nil, err
	}
	next := fmt.Sprintf("%s://%s/v2/_catalog?n=1000", reg.Scheme(), reg.RegistryStr())
	var all []string
	for next != "" {
		u := next
		resp, err := c.do(ctx, func() (*http.Request, error) {
			return http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		}, http.StatusOK)
		if err != nil {
			return nil, fmt.Errorf("catalog of %s: %w", reg, err)
		}
		var page struct {
			Repositories []string `json:"repositories"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&page)
		link := resp.Header.Get("Link")
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("catalog of %s: %w", reg, err)
		}
		all = append(all, page.Repositories...)
		if next, err = nextLink(u, link); err != nil {
			return nil, fmt.Errorf("catalog of %s: %w", reg, err)
		}
	}
	return all, nil
}

func nextLink(current, link string) (string, error) {
	if link == "" {
		return "", nil
	}
	start, end := strings.Index(link, "<"), strings.Index(link, ">")
	if start < 0 || end < start {
		return "", fmt.Errorf("malformed Link header %q", link)
	}
	base, err := url.Parse(current)
	if err != nil {
		return "", err
	}
	u, err := base.Parse(link[start+1 : end])
	if err != nil {
		return "", fmt.Errorf("malformed Link header %q: %w", link, err)
	}
	return u.String(), nil
}
