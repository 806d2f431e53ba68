package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ferry-dev/ferry/blob"
)

// hashingBody feeds every byte read through h, the work a verifying
// client cannot skip (the digest itself is not compared: the registries
// already agree on it).
type hashingBody struct {
	io.ReadCloser
	h hash.Hash
}

func (b hashingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.h.Write(p[:n])
	return n, err
}

// ceilingTool is the pseudo-tool that shows what the registries and the
// machine allow: a minimal client, in the bench's own process, that moves
// every blob at once and verifies nothing (as the performance issue's
// reference client did). No real tool can beat it by much; a tool close
// to it is limited by the other side, not by itself.
const ceilingTool = "ceiling"

// hashingCeilingTool is the same minimal client hashing every byte with
// sha256 as it streams, as a verifying tool must: the gap between the two
// rows is what verification alone costs on this machine.
const hashingCeilingTool = "ceiling-sha256"

// pseudoTool says whether name is one of the bench's in-process minimal
// clients rather than a program to run.
func pseudoTool(name string) bool { return name == ceilingTool || name == hashingCeilingTool }

// pseudoLabel is how the report names a minimal client.
var pseudoLabel = map[string]string{
	ceilingTool:        "ceiling: minimal client, no verification",
	hashingCeilingTool: "ceiling-sha256: minimal client, hashing every byte",
}

// ceilingTransport has the 64 KiB read and write buffers of ferry's
// registry transport, so the ceiling is not held back by 4 KiB reads. It
// has none of ferry's other tuning (large request-body writes): it is the
// plain net/http a minimal client gets.
var ceilingTransport = &http.Transport{
	MaxIdleConnsPerHost: 8,
	ReadBufferSize:      64 << 10,
	WriteBufferSize:     64 << 10,
}

// ceiling runs one scenario with the minimal client and measures its wall
// time (its memory is the bench's, so none is reported).
func ceiling(scenario string, j job, img *image, hashing bool) measurement {
	start := time.Now()
	hashed := func(r io.ReadCloser) io.ReadCloser {
		if !hashing {
			return r
		}
		return hashingBody{r, sha256.New()}
	}
	var err error
	switch scenario {
	case "copy":
		err = ceilingPush(j.dst, img, func(d blobDesc) (io.ReadCloser, error) {
			r, err := get(fmt.Sprintf("http://%s/blobs/%s", v2(j.src), d.Digest))
			if err != nil {
				return nil, err
			}
			return hashed(r), nil
		})
	case "push":
		err = ceilingPush(j.dst, img, func(d blobDesc) (io.ReadCloser, error) {
			f, err := os.Open(img.blobPath(d))
			if err != nil {
				return nil, err
			}
			return hashed(f), nil
		})
	case "pull":
		err = ceilingPull(j.src, j.layout, img, hashed)
	default:
		err = errUnsupported
	}
	return measurement{seconds: time.Since(start).Seconds(), err: err}
}

// v2 turns host/repo:tag into host/v2/repo.
func v2(ref string) string {
	host, rest, _ := strings.Cut(ref, "/")
	repo, _, _ := strings.Cut(rest, ":")
	return host + "/v2/" + repo
}

func get(url string) (io.ReadCloser, error) {
	req := mustRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := ceilingTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return resp.Body, nil
}

func mustRequest(method, url string, body io.Reader) *http.Request {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		panic(err)
	}
	return req
}

// ceilingPush uploads every blob at once (POST, one streamed PUT) from
// what open returns, then the image's manifest (the generated file, the
// same bytes the source registry holds) under the tag.
func ceilingPush(dst string, img *image, open func(blobDesc) (io.ReadCloser, error)) error {
	base := "http://" + v2(dst)
	var g errgroup.Group
	for _, d := range []blobDesc{img.Config, img.Base, img.Delta} {
		g.Go(func() error { return pushBlob(base, d, open) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	raw, err := os.ReadFile(img.blobPath(img.Manifest))
	if err != nil {
		return err
	}
	return putManifest(base, "v1", img.Manifest.MediaType, raw)
}

// pushBlob uploads one blob to the repository at base (http://HOST/v2/REPO)
// with a POST and one streamed PUT of what open returns.
func pushBlob(base string, d blobDesc, open func(blobDesc) (io.ReadCloser, error)) error {
	resp, err := ceilingTransport.RoundTrip(mustRequest(http.MethodPost, base+"/blobs/uploads/", nil))
	if err != nil {
		return err
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		return fmt.Errorf("POST upload: %s: %w", resp.Status, err)
	}
	q := loc.Query()
	q.Set("digest", d.Digest)
	loc.RawQuery = q.Encode()
	body, err := open(d)
	if err != nil {
		return err
	}
	defer body.Close()
	req := mustRequest(http.MethodPut, loc.String(), body)
	req.ContentLength = d.Size
	resp, err = ceilingTransport.RoundTrip(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("PUT blob %s: %s", d.Digest, resp.Status)
	}
	return nil
}

// putManifest puts raw under ref in the repository at base.
func putManifest(base, ref, mediaType string, raw []byte) error {
	req := mustRequest(http.MethodPut, base+"/manifests/"+ref, bytes.NewReader(raw))
	req.Header.Set("Content-Type", mediaType)
	resp, err := ceilingTransport.RoundTrip(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("PUT manifest %s: %s", ref, resp.Status)
	}
	return nil
}

// ceilingPull writes every blob at once into layout's blob directory,
// through a temporary name as a careful tool would.
func ceilingPull(src, layout string, img *image, wrap func(io.ReadCloser) io.ReadCloser) error {
	dir := filepath.Join(layout, "blobs", "sha256")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var g errgroup.Group
	for _, d := range []blobDesc{img.Manifest, img.Config, img.Base, img.Delta} {
		g.Go(func() error {
			kind := "blobs"
			if d.Digest == img.Manifest.Digest {
				kind = "manifests"
			}
			body, err := get(fmt.Sprintf("http://%s/%s/%s", v2(src), kind, d.Digest))
			if err != nil {
				return err
			}
			body = wrap(body)
			defer body.Close()
			final := filepath.Join(dir, d.Digest[len("sha256:"):])
			f, err := os.Create(final + ".tmp")
			if err != nil {
				return err
			}
			if _, err := blob.Copy(f, body); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			return os.Rename(final+".tmp", final)
		})
	}
	return g.Wait()
}
