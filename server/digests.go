package server

// This file makes ferry serve take content by a digest of any algorithm
// go-digest knows (sha512, sha384), not only sha256, as distribution-spec
// 1.1 and its conformance suite ask. distribution v3.1.2 does part of it:
//
//   - an upload finished with `?digest=sha512:...` is verified, stored under
//     its sha256 digest and linked in the repository by both digests
//     (internal/regstorage/aliaslinks draws the links), and a blob GET or
//     HEAD by the sha512 digest follows the alias;
//   - a manifest GET or HEAD by a digest follows a revision link of that
//     digest's algorithm.
//
// and gets the rest wrong, which this layer, in front of it, puts right
// without changing it:
//
//   - it answers with the canonical digest (Docker-Content-Digest and
//     Location of uploads, blob GET and HEAD), where the spec wants the one
//     the client gave: the headers are rewritten;
//   - a mount by a sha512 digest links the sha512 digest to itself, a link
//     to nothing (the blob is then unknown in the target): the mount is
//     passed on by the canonical digest the source repository links the
//     sha512 digest to, and the alias written in the target;
//   - a manifest PUT by a sha512 digest is refused (DIGEST_INVALID), since
//     distribution compares the URL's digest with the sha256 of the body:
//     the digest is checked here, the PUT passed on by the sha256 digest and
//     a revision alias written;
//   - DELETE by an alias removes only the alias, and DELETE by the canonical
//     digest leaves its aliases resolving: both delete the canonical digest
//     and then every alias that points at it.
//
// It also takes the tag query parameters of a manifest PUT by digest
// (`PUT /v2/<name>/manifests/<digest>?tag=a&tag=b`, which the spec allows
// and which is the only way to tag content pushed by a sha512 digest) and
// answers them with OCI-Tag. Requests naming sha256 digests pass through
// untouched, apart from the cleanup of aliases after a DELETE.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/distribution/reference"
	"github.com/gorilla/mux"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"

	"github.com/ferry-dev/ferry/internal/regstorage/aliaslinks"
)

const (
	headerDigest   = "Docker-Content-Digest"
	headerLocation = "Location"
	// headerTag is distribution-spec 1.1's answer to tag query parameters.
	headerTag = "OCI-Tag"
	// maxTagParams bounds the tag query parameters of one manifest PUT;
	// the spec asks for at least 10.
	maxTagParams = 100
)

// digests looks at a request distribution's router matched (m) and, when
// it names content by a non-canonical digest, deletes by digest or pushes a
// manifest with tag parameters, returns the request and writer to pass on
// in its place. ok is false when it has answered the request itself.
func (l *ociLayer) digests(w http.ResponseWriter, r *http.Request, m *mux.RouteMatch) (_ http.ResponseWriter, _ *http.Request, ok bool) {
	name := m.Vars["name"]
	switch m.Route.GetName() {
	case v2.RouteNameBlob:
		d, err := digest.Parse(m.Vars["digest"])
		if err != nil {
			break // distribution's error
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			if d.Algorithm() != digest.Canonical {
				w = &hookWriter{ResponseWriter: w, before: func(code int) error {
					answerWith(w.Header(), code, d)
					return nil
				}}
			}
		case http.MethodDelete:
			return l.deleteByDigest(w, r, name, aliaslinks.Layers, d)
		}
	case v2.RouteNameBlobUpload:
		if r.Method != http.MethodPost {
			break
		}
		q := r.URL.Query()
		if alg := q.Get("digest-algorithm"); alg != "" && !digest.Algorithm(alg).Available() {
			serveError(w, errcode.ErrorCodeDigestInvalid.WithMessage(fmt.Sprintf("digest algorithm %q is not supported", alg)))
			return w, r, false
		}
		if d, err := digest.Parse(q.Get("digest")); err == nil && d.Algorithm() != digest.Canonical {
			w = answerWithWriter(w, d)
		}
		if d, err := digest.Parse(q.Get("mount")); err == nil && d.Algorithm() != digest.Canonical {
			w, r = l.mount(w, r, name, d)
		}
	case v2.RouteNameBlobUploadChunk:
		if d, err := digest.Parse(r.URL.Query().Get("digest")); err == nil && r.Method == http.MethodPut && d.Algorithm() != digest.Canonical {
			w = answerWithWriter(w, d)
		}
	case v2.RouteNameManifest:
		d, err := digest.Parse(m.Vars["reference"])
		if err != nil {
			break // a tag, or distribution's error
		}
		switch r.Method {
		case http.MethodDelete:
			return l.deleteByDigest(w, r, name, aliaslinks.Revisions, d)
		case http.MethodPut:
			if d.Algorithm() != digest.Canonical || r.URL.Query().Has("tag") {
				return l.putManifestByDigest(w, r, name, d)
			}
		}
	}
	return w, r, true
}

// answerWith rewrites a successful answer's digest headers to d, the
// digest the client named the content by, from the canonical digest
// distribution answers with.
func answerWith(h http.Header, code int, d digest.Digest) {
	if code >= http.StatusBadRequest || h.Get(headerDigest) == "" {
		return
	}
	canonical := h.Get(headerDigest)
	h.Set(headerDigest, d.String())
	if loc := h.Get(headerLocation); strings.HasSuffix(loc, "/"+canonical) {
		h.Set(headerLocation, strings.TrimSuffix(loc, canonical)+d.String())
	}
	if h.Get("Etag") != "" {
		h.Set("Etag", `"`+d.String()+`"`)
	}
}

// answerWithWriter is w answering with d (answerWith).
func answerWithWriter(w http.ResponseWriter, d digest.Digest) http.ResponseWriter {
	return &hookWriter{ResponseWriter: w, before: func(code int) error {
		answerWith(w.Header(), code, d)
		return nil
	}}
}

// mount passes on a mount of d (non-canonical) from another repository by
// the canonical digest the source links d to, and writes the alias in the
// target once distribution has mounted it. Without a source (an anonymous
// mount), or when the source does not have d, the request goes on as it
// is: distribution starts an upload (202), which the spec allows.
func (l *ociLayer) mount(w http.ResponseWriter, r *http.Request, name string, d digest.Digest) (http.ResponseWriter, *http.Request) {
	q := r.URL.Query()
	from, err := reference.WithName(q.Get("from"))
	if err != nil {
		return w, r
	}
	repo, err := l.ns.Repository(r.Context(), from)
	if err != nil {
		return w, r
	}
	desc, err := repo.Blobs(r.Context()).Stat(r.Context(), d)
	if err != nil || desc.Digest == d {
		return w, r
	}
	canonical := desc.Digest
	q.Set("mount", canonical.String())
	r = r.Clone(r.Context())
	r.URL.RawQuery = q.Encode()
	ctx := r.Context()
	return &hookWriter{ResponseWriter: w, before: func(code int) error {
		if code != http.StatusCreated {
			return nil
		}
		if err := aliaslinks.Write(ctx, l.driver, name, aliaslinks.Layers, d, canonical); err != nil {
			return errcode.ErrorCodeUnknown.WithDetail(err.Error())
		}
		answerWith(w.Header(), code, d)
		return nil
	}}, r
}

// deleteByDigest passes on a DELETE of d by its canonical digest (when d is
// an alias in repository name) and, once distribution has deleted it,
// deletes every alias of the canonical digest too: content is gone by
// every name or by none. A failure to delete an alias is logged and leaves
// it for storage gc, which removes aliases of what it removes.
func (l *ociLayer) deleteByDigest(w http.ResponseWriter, r *http.Request, name string, k aliaslinks.Kind, d digest.Digest) (http.ResponseWriter, *http.Request, bool) {
	named, err := reference.WithName(name)
	if err != nil {
		return w, r, true
	}
	canonical := d
	if d.Algorithm() != digest.Canonical {
		c, err := aliaslinks.Read(r.Context(), l.driver, name, k, d)
		if err != nil {
			return w, r, true // unknown: distribution's 404
		}
		canonical = c
		// An alias left behind without its canonical link (by an
		// older ferry, or distribution alone) is deleted as it is.
		if _, err := aliaslinks.Read(r.Context(), l.driver, name, k, c); err == nil {
			r = withLastSegment(r, d, canonical)
		}
	}
	ctx := r.Context()
	return &hookWriter{ResponseWriter: w, before: func(code int) error {
		if code != http.StatusAccepted {
			return nil
		}
		if err := l.deleteAliases(ctx, named, k, canonical); err != nil {
			logrus.WithError(err).Warnf("delete the aliases of %s in %s; storage gc removes them", canonical, name)
		}
		return nil
	}}, r, true
}

// deleteAliases deletes the aliases of canonical in repository named
// through distribution, so that a descriptor cache forgets them too.
func (l *ociLayer) deleteAliases(ctx context.Context, named reference.Named, k aliaslinks.Kind, canonical digest.Digest) error {
	aliases, err := aliaslinks.Find(ctx, l.driver, named.Name(), k, canonical)
	if err != nil || len(aliases) == 0 {
		return err
	}
	repo, err := l.ns.Repository(ctx, named)
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range aliases {
		if k == aliaslinks.Layers {
			err = repo.Blobs(ctx).Delete(ctx, a)
		} else {
			err = deleteManifestAlias(ctx, repo, a)
		}
		if err != nil {
			// The canonical content may be gone already: the link is
			// deleted by path.
			err = l.driver.Delete(ctx, aliaslinks.Path(named.Name(), k, a))
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// deleteManifestAlias deletes revision alias a and, as distribution does
// for the canonical digest, the tags that point at it (tag parameters tag
// by the alias).
func deleteManifestAlias(ctx context.Context, repo distribution.Repository, a digest.Digest) error {
	tags := repo.Tags(ctx)
	names, err := tags.Lookup(ctx, v1.Descriptor{Digest: a})
	if err != nil {
		return err
	}
	for _, t := range names {
		if err := tags.Untag(ctx, t); err != nil {
			return err
		}
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		return err
	}
	return ms.Delete(ctx, a)
}

// putManifestByDigest checks a manifest PUT by digest d against its body
// when d is not canonical, passes it on by the body's canonical digest,
// and once distribution has stored it writes d's revision alias and the
// tags of the request's tag parameters, answering with d and OCI-Tag.
func (l *ociLayer) putManifestByDigest(w http.ResponseWriter, r *http.Request, name string, d digest.Digest) (http.ResponseWriter, *http.Request, bool) {
	if !l.mayPush(r, name) {
		return w, r, true // distribution's 401
	}
	named, err := reference.WithName(name)
	if err != nil {
		return w, r, true
	}
	tags := r.URL.Query()["tag"]
	if len(tags) > maxTagParams {
		serveError(w, errcode.ErrorCodeTagInvalid.WithMessage(fmt.Sprintf("at most %d tag parameters", maxTagParams)))
		return w, r, false
	}
	for _, t := range tags {
		if !anchoredTag.MatchString(t) {
			serveError(w, errcode.ErrorCodeTagInvalid.WithDetail(t))
			return w, r, false
		}
	}
	canonical := d
	if d.Algorithm() != digest.Canonical {
		body, ok := manifestBody(r)
		if !ok {
			// Distribution refuses it, by size or by digest.
			return w, r, true
		}
		if got := d.Algorithm().FromBytes(body); got != d {
			serveError(w, errcode.ErrorCodeDigestInvalid.WithMessage(fmt.Sprintf("manifest digest %s does not match the body's, %s", d, got)))
			return w, r, false
		}
		canonical = digest.FromBytes(body)
		r = withLastSegment(r, d, canonical) // keeps the held body
	}
	ctx := r.Context()
	return &hookWriter{ResponseWriter: w, before: func(code int) error {
		if code != http.StatusCreated {
			return nil
		}
		if d != canonical {
			if err := aliaslinks.Write(ctx, l.driver, name, aliaslinks.Revisions, d, canonical); err != nil {
				return errcode.ErrorCodeUnknown.WithDetail(err.Error())
			}
			answerWith(w.Header(), code, d)
		}
		if len(tags) == 0 {
			return nil
		}
		repo, err := l.ns.Repository(ctx, named)
		if err != nil {
			return errcode.ErrorCodeUnknown.WithDetail(err.Error())
		}
		// Tagged by d, not the canonical digest: a GET or HEAD by the
		// tag then answers with the digest the client pushed by.
		for _, t := range tags {
			if err := repo.Tags(ctx).Tag(ctx, t, v1.Descriptor{Digest: d}); err != nil {
				return errcode.ErrorCodeUnknown.WithDetail(fmt.Sprintf("tag %s: %v", t, err))
			}
		}
		w.Header().Set(headerTag, strings.Join(tags, ", "))
		return nil
	}}, r, true
}

// withLastSegment is r with the last path segment, from, replaced by to.
func withLastSegment(r *http.Request, from, to digest.Digest) *http.Request {
	r = r.Clone(r.Context())
	r.URL.Path = strings.TrimSuffix(r.URL.Path, from.String()) + to.String()
	r.URL.RawPath = ""
	r.RequestURI = r.URL.RequestURI()
	return r
}

// heldBody is a request body whose first bytes, a manifest up to
// distribution's size limit, were read ahead: they are read again, then
// the rest of the original body.
type heldBody struct {
	io.Reader
	io.Closer
	held     []byte
	complete bool // held is the whole body, within the limit
}

// manifestBody reads a manifest PUT's body ahead and gives r its body
// back whole. The body is read once however many of ferry's layers look
// at it (the hardening guard, the digest layer, the OCI-Subject layer all
// run before distribution reads it). ok is false for a body over
// distribution's limit or one that failed to read: those are left to
// distribution, which refuses them.
func manifestBody(r *http.Request) (body []byte, ok bool) {
	if h, held := r.Body.(*heldBody); held {
		return h.held, h.complete
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxManifestSize+1))
	h := &heldBody{Reader: io.MultiReader(bytes.NewReader(body), r.Body), Closer: r.Body, held: body}
	h.complete = err == nil && len(body) <= maxManifestSize
	r.Body = h
	return body, h.complete
}

// hookWriter calls before with the status code before the response's
// header is written, so the header can still be changed. When before
// returns an error, that error is the response instead, and what the
// handler writes after is dropped.
type hookWriter struct {
	http.ResponseWriter
	before        func(code int) error
	wrote, failed bool
}

// WriteHeader implements http.ResponseWriter.
func (h *hookWriter) WriteHeader(code int) {
	if h.wrote {
		if !h.failed {
			h.ResponseWriter.WriteHeader(code)
		}
		return
	}
	h.wrote = true
	if err := h.before(code); err != nil {
		h.failed = true
		for _, k := range []string{headerDigest, headerLocation, "Content-Length", "Etag", headerTag, headerSubject} {
			h.Header().Del(k)
		}
		serveError(h.ResponseWriter, err)
		return
	}
	h.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (h *hookWriter) Write(b []byte) (int, error) {
	if !h.wrote {
		h.WriteHeader(http.StatusOK)
	}
	if h.failed {
		return len(b), nil
	}
	return h.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (h *hookWriter) Unwrap() http.ResponseWriter { return h.ResponseWriter }
