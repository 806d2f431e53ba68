package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/server"
)

// TestClientMistakesAre4xx sends the red-team's bad requests (issue 18 item
// 5) and wants 4xx answers with the spec's error codes, never a 500, and no
// response naming the storage root's host path.
func TestClientMistakesAre4xx(t *testing.T) {
	root := t.TempDir()
	r := newReg(t, server.WithRoot(root))
	img := r.image("app", "bad-input")
	r.pushManifest("app", "v1", img)
	long := strings.Repeat("a", 300)
	resp, body := r.do(http.MethodPost, "/v2/app/blobs/uploads/", nil)
	r.want(resp, body, http.StatusAccepted)
	upload := r.location(resp)

	cases := []struct {
		name, method, path string
		body               string
		header             []string
		code               int
		errCode            string
	}{
		{"long name tags/list", http.MethodGet, "/v2/" + long + "/tags/list", "", nil, 400, "NAME_INVALID"},
		{"long name upload", http.MethodPost, "/v2/" + long + "/blobs/uploads/", "", nil, 400, "NAME_INVALID"},
		{"long name manifest", http.MethodPut, "/v2/" + long + "/manifests/v1", `{}`, []string{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}, 400, "NAME_INVALID"},
		{"long nested name", http.MethodGet, "/v2/" + strings.Repeat("ab/", 90) + "x/tags/list", "", nil, 400, "NAME_INVALID"},
		{"null manifest", http.MethodPut, "/v2/app/manifests/v2", `null`, []string{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}, 400, "MANIFEST_INVALID"},
		{"array manifest", http.MethodPut, "/v2/app/manifests/v2", `[]`, []string{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}, 400, "MANIFEST_INVALID"},
		{"content-range bytes=", http.MethodPatch, upload, "xy", []string{"Content-Range", "bytes=4-5", "Content-Type", "application/octet-stream"}, 416, "BLOB_UPLOAD_INVALID"},
		{"content-range negative", http.MethodPatch, upload, "xy", []string{"Content-Range", "-1-0", "Content-Type", "application/octet-stream"}, 416, "BLOB_UPLOAD_INVALID"},
		{"last NUL", http.MethodGet, "/v2/app/tags/list?last=%00", "", nil, 400, "TAG_INVALID"},
		{"last too long", http.MethodGet, "/v2/app/tags/list?last=" + long, "", nil, 400, "TAG_INVALID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &reg{t: t, url: r.url}
			resp, body := r.do(c.method, c.path, []byte(c.body), c.header...)
			if strings.Contains(string(body), root) {
				t.Errorf("response names the storage root %s: %s", root, body)
			}
			r.wantError(resp, body, c.code, c.errCode)
		})
	}
}

// TestNegativeSizeRefused pushes manifests with a descriptor of size -5
// (issue 18 item 6) and wants MANIFEST_INVALID.
func TestNegativeSizeRefused(t *testing.T) {
	r := newReg(t, server.WithRoot(t.TempDir()))
	img := r.image("app", "negative")
	for name, mutate := range map[string]func(m map[string]any){
		"config": func(m map[string]any) { m["config"].(map[string]any)["size"] = -5 },
		"layer":  func(m map[string]any) { m["layers"].([]any)[0].(map[string]any)["size"] = -5 },
	} {
		t.Run(name, func(t *testing.T) {
			r := &reg{t: t, url: r.url}
			b, _ := json.Marshal(img)
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			mutate(m)
			b, _ = json.Marshal(m)
			resp, body := r.do(http.MethodPut, "/v2/app/manifests/neg", b, "Content-Type", img.MediaType)
			r.wantError(resp, body, http.StatusBadRequest, "MANIFEST_INVALID")
		})
	}
	idx := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat("0", 64) + `","size":-5}]}`
	resp, body := r.do(http.MethodPut, "/v2/app/manifests/negidx", []byte(idx), "Content-Type", "application/vnd.oci.image.index.v1+json")
	r.wantError(resp, body, http.StatusBadRequest, "MANIFEST_INVALID")
}
