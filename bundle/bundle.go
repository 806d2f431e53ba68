// Package bundle carries many images across an air gap in one file: an
// oci-archive whose index.json lists each image (a single image or a whole
// index) with the reference it came from, so that it can be pushed back
// under the same repository path on another registry.
//
//	FILE (tar, an OCI image layout)
//	  oci-layout
//	  index.json       one entry per image:
//	                     io.containerd.image.name    mcr.microsoft.com/windows/servercore:ltsc2019
//	                     org.opencontainers.image.ref.name  (the same)
//	  blobs/sha256/    every blob once, however many images share it
//
// The reference annotations are the ones containerd (ctr import) and
// Docker 25+ read, so a bundle is also an ordinary oci-archive.
package bundle

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/store/dockerarchive"
	"github.com/ferry-dev/ferry/store/ociarchive"
	"github.com/ferry-dev/ferry/transfer"
)

// Image is one image to put into a bundle: its reference, as recorded, and
// where to read it.
type Image struct {
	Ref    name.Reference
	Source store.Source
}

// Entry is one image of a bundle.
type Entry struct {
	// Ref is the image's original reference.
	Ref string `json:"reference"`
	// Descriptor is its manifest or index.
	Descriptor v1.Descriptor `json:"descriptor"`
}

// Result is what writing one image of a bundle did.
type Result struct {
	// Ref is the image's original reference.
	Ref string `json:"reference"`
	// Destination is where Push put it (empty for Create).
	Destination string `json:"destination,omitempty"`
	*transfer.Result
}

// refAnnotations records ref the way containerd and Docker read it.
func refAnnotations(ref name.Reference) map[string]string {
	full := ref.Name()
	return map[string]string{dockerarchive.ContainerdNameAnnotation: full, ocispec.AnnotationRefName: full}
}

// tagAs is a Target that records its root under a bundle reference.
type tagAs struct {
	*ociarchive.Target
	ann map[string]string
}

func (t tagAs) Tag(ctx context.Context, desc v1.Descriptor, raw []byte) error {
	return t.TagAs(ctx, desc, raw, t.ann)
}

// Close is a no-op: the archive is closed once, by Create.
func (t tagAs) Close() error { return nil }

// Writer writes images into a new bundle, each through the target Target
// returns, several at once if need be; the file appears at Close.
type Writer struct {
	t *ociarchive.Target
}

// NewWriter starts a bundle that becomes the file p at Close.
func NewWriter(p string) (*Writer, error) {
	t, err := ociarchive.Create(p, "")
	if err != nil {
		return nil, err
	}
	return &Writer{t: t}, nil
}

// Target is where the image ref is copied: its root is recorded under
// ref. Closing it does nothing; blobs written through any target of w are
// stored once and found (HasBlob) by every other.
func (w *Writer) Target(ref name.Reference) store.Target {
	return tagAs{w.t, refAnnotations(ref)}
}

// Close writes the bundle's index and renames the file into place.
func (w *Writer) Close() error { return w.t.Close() }

// Abort discards the bundle: nothing is left at its path.
func (w *Writer) Abort() { w.t.Abort() }

// Create writes images into a new bundle at p with the copy options opts
// (foreign policy, platforms, events). The file appears only when every
// image was written; on any error nothing is left at p.
func Create(ctx context.Context, p string, images []Image, opts ...transfer.Option) ([]Result, error) {
	if len(images) == 0 {
		return nil, errors.New("bundle: no images")
	}
	seen := map[string]bool{}
	for _, img := range images {
		if seen[img.Ref.Name()] {
			return nil, fmt.Errorf("bundle: %s named twice", img.Ref.Name())
		}
		seen[img.Ref.Name()] = true
	}
	w, err := NewWriter(p)
	if err != nil {
		return nil, err
	}
	var results []Result
	for _, img := range images {
		res, err := transfer.Copy(ctx, img.Source, w.Target(img.Ref), opts...)
		if err != nil {
			w.Abort()
			return nil, fmt.Errorf("bundle %s: %s: %w", p, img.Ref.Name(), err)
		}
		results = append(results, Result{Ref: img.Ref.Name(), Result: res})
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return results, nil
}

// List returns the images of the bundle at p.
func List(p string) ([]Entry, error) {
	src, err := ociarchive.OpenSource(p, "")
	if err != nil {
		return nil, err
	}
	defer src.Close()
	return entries(src, p)
}

func entries(src *ociarchive.Source, p string) ([]Entry, error) {
	idx, err := src.ReadIndex()
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, d := range idx.Manifests {
		ref := d.Annotations[dockerarchive.ContainerdNameAnnotation]
		if ref == "" {
			ref = d.Annotations[ocispec.AnnotationRefName]
		}
		if ref == "" {
			return nil, fmt.Errorf("bundle %s: image %s has no reference annotation: not a bundle ferry can push by name", p, d.Digest)
		}
		out = append(out, Entry{Ref: ref, Descriptor: d})
	}
	return out, nil
}

// Destination maps an image's original reference to where bundle push
// puts it: the same repository path (registry host dropped) under
// registry/prefix, with its tag or digest.
// mcr.microsoft.com/windows/servercore:ltsc2019 with prefix
// reg.example:5000/mirror becomes reg.example:5000/mirror/windows/servercore:ltsc2019.
func Destination(original, registryPrefix string, opts ...name.Option) (name.Reference, error) {
	ref, err := name.ParseReference(original, opts...)
	if err != nil {
		return nil, fmt.Errorf("bundle entry %q: %w", original, err)
	}
	repo := path.Join(strings.TrimSuffix(registryPrefix, "/"), ref.Context().RepositoryStr())
	switch r := ref.(type) {
	case name.Tag:
		return name.NewTag(repo+":"+r.TagStr(), opts...)
	case name.Digest:
		return name.NewDigest(repo+"@"+r.DigestStr(), opts...)
	}
	return nil, fmt.Errorf("bundle entry %q: neither a tag nor a digest", original)
}

// Push copies every image of the bundle at p to its Destination under
// registryPrefix, through the targets r opens (Target, given the
// destination's reference and no source), with the copy options opts. It stops at the first failure; images already pushed stay (a rerun
// skips their blobs).
func Push(ctx context.Context, p, registryPrefix string, r store.Resolver, opts ...transfer.Option) ([]Result, error) {
	src, err := ociarchive.OpenSource(p, "")
	if err != nil {
		return nil, err
	}
	defer src.Close()
	list, err := entries(src, p)
	if err != nil {
		return nil, err
	}
	var results []Result
	for _, e := range list {
		ref, err := Destination(e.Ref, registryPrefix)
		if err != nil {
			return results, err
		}
		dst, err := r.Target(ctx, ref.String(), nil)
		if err != nil {
			return results, err
		}
		res, err := transfer.Copy(ctx, src.Image(e.Descriptor.Digest.String()), dst, opts...)
		if err != nil {
			dst.Close()
			return results, fmt.Errorf("bundle %s: %s: %w", p, e.Ref, err)
		}
		if err := dst.Close(); err != nil {
			return results, err
		}
		results = append(results, Result{Ref: e.Ref, Destination: ref.String(), Result: res})
	}
	return results, nil
}
