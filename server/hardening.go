package server

// This file is the guard in front of the registry: it answers the client
// mistakes distribution answers with 500 (or with a host path in the body)
// with the 4xx the distribution spec gives them, turns a full disk into
// 507 Insufficient Storage, and keeps the storage root's host path out of
// every error body.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"github.com/ferry-dev/ferry/internal/regstorage/uploads"
	"github.com/ferry-dev/ferry/mediatype"
)

const (
	// maxNameLength is the distribution spec's limit on a repository
	// name (reference.NameTotalLengthMax).
	maxNameLength = reference.NameTotalLengthMax
	// maxErrorBody bounds the error bodies the guard holds to rewrite;
	// distribution's are a few hundred bytes.
	maxErrorBody = 64 << 10
	// diskFull is how ENOSPC reads in distribution's error details.
	diskFull = "no space left on device"
)

var (
	anchoredTag = regexp.MustCompile(`^` + reference.TagRegexp.String() + `$`)
	// chunkRange is the distribution spec's Content-Range of a PATCH:
	// "<start>-<end>", inclusive, without a unit.
	chunkRange = regexp.MustCompile(`^([0-9]{1,18})-([0-9]{1,18})$`)
)

// guard checks requests before distribution sees them and rewrites its
// error responses on the way out.
type guard struct {
	next    http.Handler
	routes  *mux.Router // distribution's own
	headers http.Header // configuration's http.headers
	// root is the filesystem storage's root directory, "" on other
	// drivers: it never appears in a response body.
	root string
	// driver is the registry's storage driver and writers its open file
	// writers, for removing an upload the disk could not hold.
	driver  storagedriver.StorageDriver
	writers *openWriters
}

// newGuard puts the guard in front of next, the registry built from cfg
// on driver, whose open file writers are writers (nil but on the
// filesystem).
func newGuard(next http.Handler, cfg *configuration.Configuration, driver storagedriver.StorageDriver, writers *openWriters) http.Handler {
	g := &guard{next: next, routes: v2.RouterWithPrefix(cfg.HTTP.Prefix), headers: cfg.HTTP.Headers, driver: driver, writers: writers}
	if cfg.Storage.Type() == "filesystem" {
		g.root, _ = cfg.Storage.Parameters()["rootdirectory"].(string)
	}
	return g
}

// ServeHTTP implements http.Handler.
func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var m mux.RouteMatch
	route := ""
	if g.routes.Match(r, &m) && m.Route != nil {
		route = m.Route.GetName()
		if status, code, detail := g.check(r, route, m.Vars); status != 0 {
			g.fail(w, status, code, detail)
			return
		}
	}
	ew := &errorWriter{ResponseWriter: w, g: g, route: route}
	g.next.ServeHTTP(ew, r)
	if ew.finish() == http.StatusInsufficientStorage && route == v2.RouteNameBlobUploadChunk {
		g.cancelUpload(r, m.Vars)
	}
}

// cancelUpload removes the upload r wrote to, so that the bytes the disk
// could not hold are freed at once rather than keeping it full until they
// are purged. distribution's own DELETE refuses an upload whose size is
// not where its signed state says (a write cut short by ENOSPC).
func (g *guard) cancelUpload(r *http.Request, vars map[string]string) {
	dir, err := uploads.Dir(vars["name"], vars["uuid"])
	if err != nil || g.driver == nil {
		return
	}
	g.writers.cancelUnder(r.Context(), dir) // openwriters.go
	if err := uploads.RemoveDir(r.Context(), g.driver, dir); err != nil {
		logrus.WithError(err).Error("removing an upload the disk could not hold")
	}
}

// check returns the status, error code and detail to refuse r with, or a
// zero status to let it through. It may replace r.Body (a manifest it has
// read).
func (g *guard) check(r *http.Request, route string, vars map[string]string) (int, errcode.ErrorCode, string) {
	if name := vars["name"]; len(name) > maxNameLength {
		return http.StatusBadRequest, errcode.ErrorCodeNameInvalid, fmt.Sprintf("repository name is %d characters long; the limit is %d", len(name), maxNameLength)
	}
	switch {
	case route == v2.RouteNameTags:
		if last := r.URL.Query().Get("last"); last != "" && !anchoredTag.MatchString(last) {
			return http.StatusBadRequest, errcode.ErrorCodeTagInvalid, "last: not a tag (up to 128 letters, digits, '_', '.', '-')"
		}
	case route == v2.RouteNameBlobUploadChunk && r.Method == http.MethodPatch:
		if cr := r.Header.Get("Content-Range"); cr != "" {
			m := chunkRange.FindStringSubmatch(cr)
			if m == nil {
				return http.StatusRequestedRangeNotSatisfiable, errcode.ErrorCodeBlobUploadInvalid, fmt.Sprintf("Content-Range %q: want <start>-<end>", cr)
			}
			start, _ := strconv.ParseInt(m[1], 10, 64)
			end, _ := strconv.ParseInt(m[2], 10, 64)
			if end < start {
				return http.StatusRequestedRangeNotSatisfiable, errcode.ErrorCodeBlobUploadInvalid, fmt.Sprintf("Content-Range %q ends before it starts", cr)
			}
		}
	case route == v2.RouteNameManifest && r.Method == http.MethodPut:
		return checkManifestBody(r)
	}
	return 0, errcode.ErrorCode(0), ""
}

// checkManifestBody refuses a manifest body that is not a JSON object or
// has a descriptor of negative size, and gives r the body back. Bodies
// over the size limit are left to distribution, which refuses them.
func checkManifestBody(r *http.Request) (int, errcode.ErrorCode, string) {
	body, ok := manifestBody(r)
	if !ok {
		return 0, errcode.ErrorCode(0), ""
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil || obj == nil {
		return http.StatusBadRequest, errcode.ErrorCodeManifestInvalid, "the manifest is not a JSON object"
	}
	if err := mediatype.CheckSizes(body); err != nil {
		return http.StatusBadRequest, errcode.ErrorCodeManifestInvalid, err.Error()
	}
	return 0, errcode.ErrorCode(0), ""
}

// fail answers with one error in the spec's JSON envelope.
func (g *guard) fail(w http.ResponseWriter, status int, code errcode.ErrorCode, detail string) {
	for k, v := range g.headers {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errcode.Errors{code.WithDetail(detail)})
}

// rewrite returns the status and body to send instead of an error
// response distribution wrote: 507 with the route's spec error code for a
// full disk, and the body without the storage root's host path.
func (g *guard) rewrite(route string, status int, body []byte) (int, []byte) {
	if status >= 500 && bytes.Contains(body, []byte(diskFull)) {
		code := errcode.ErrorCodeBlobUploadInvalid
		if route == v2.RouteNameManifest {
			code = errcode.ErrorCodeManifestInvalid
		}
		b, _ := json.Marshal(errcode.Errors{code.WithMessage("insufficient storage: the registry's disk is full")})
		return http.StatusInsufficientStorage, append(b, '\n')
	}
	if g.root != "" {
		body = bytes.ReplaceAll(body, []byte(strings.TrimSuffix(g.root, "/")), nil)
	}
	return status, body
}

// errorWriter passes successful responses through and holds error
// responses (status 400 and up) until the handler is done, for the guard
// to rewrite.
type errorWriter struct {
	http.ResponseWriter
	g      *guard
	route  string
	status int // 0 until WriteHeader
	held   *bytes.Buffer
}

// WriteHeader implements http.ResponseWriter.
func (w *errorWriter) WriteHeader(status int) {
	if w.status != 0 {
		return
	}
	w.status = status
	if status >= 400 {
		w.held = &bytes.Buffer{}
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

// Write implements http.ResponseWriter.
func (w *errorWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.held != nil {
		if w.held.Len()+len(b) > maxErrorBody {
			w.release()
		} else {
			return w.held.Write(b)
		}
	}
	return w.ResponseWriter.Write(b)
}

// ReadFrom keeps io.Copy's large steps (and the server's own ReadFrom)
// for blob bodies.
func (w *errorWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.held != nil {
		return io.Copy(struct{ io.Writer }{w}, src)
	}
	return io.Copy(w.ResponseWriter, src)
}

// Flush implements http.Flusher; an error response is sent at the end.
func (w *errorWriter) Flush() {
	if w.held == nil {
		_ = http.NewResponseController(w.ResponseWriter).Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *errorWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// release sends what is held as it is (too large to be distribution's).
func (w *errorWriter) release() {
	held := w.held
	w.held = nil
	w.ResponseWriter.WriteHeader(w.status)
	_, _ = w.ResponseWriter.Write(held.Bytes())
}

// finish sends a held error response, rewritten, and returns the status
// sent.
func (w *errorWriter) finish() int {
	if w.held == nil {
		return w.status
	}
	status, body := w.g.rewrite(w.route, w.status, w.held.Bytes())
	w.held = nil
	if len(body) > 0 || status != w.status {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.ResponseWriter.WriteHeader(status)
	_, _ = w.ResponseWriter.Write(body)
	return status
}
