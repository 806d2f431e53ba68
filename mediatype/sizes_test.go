package mediatype

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckSizes(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want string // "" for no error
	}{
		{`{"config":{"digest":"sha256:c","size":2},"layers":[{"digest":"sha256:l","size":0}]}`, ""},
		{`{"config":{"digest":"sha256:c","size":-5}}`, "config sha256:c"},
		{`{"layers":[{"digest":"sha256:a","size":1},{"digest":"sha256:b","size":-5}]}`, "layer 2 sha256:b"},
		{`{"manifests":[{"digest":"sha256:m","size":-1}]}`, "manifest 1 sha256:m"},
		{`{"blobs":[{"digest":"sha256:x","size":-1}]}`, "blob 1"},
		{`{"subject":{"digest":"sha256:s","size":-1}}`, "subject sha256:s"},
		{`null`, ""},
		{`not json`, ""},
	} {
		err := CheckSizes([]byte(c.raw))
		if c.want == "" {
			if err != nil {
				t.Errorf("CheckSizes(%s) = %v, want nil", c.raw, err)
			}
			continue
		}
		if !errors.Is(err, ErrNegativeSize) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckSizes(%s) = %v, want ErrNegativeSize naming %q", c.raw, err, c.want)
		}
	}
}
