package location

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Local turns a bare path into a local location by looking at what is
// there, for pull and push, which take paths: a directory is an OCI
// layout, or a dir: when it holds manifest.json but no index.json; a tar holding manifest.json is a docker-archive (Docker 25+
// archives hold an OCI layout too, and read best through manifest.json);
// any other tar holding index.json is an oci-archive. A text that already
// has a local prefix (oci:, oci-archive:, docker-archive:, dir:) is parsed as
// it is.
func Local(s string) (Location, error) {
	if r := route(s); r.kind == routeLayout || r.kind == routeLayoutArchive || r.kind == routeDockerArchive || r.kind == routeDir {
		return Parse(s)
	}
	fi, err := os.Stat(s)
	if err != nil {
		return Location{}, fmt.Errorf("%s: %w", s, err)
	}
	if fi.IsDir() {
		if _, err := os.Stat(filepath.Join(s, "index.json")); err != nil {
			if _, err := os.Stat(filepath.Join(s, "manifest.json")); err == nil {
				return Location{Kind: Dir, Raw: s, Path: s}, nil
			}
			return Location{}, fmt.Errorf("%s: a directory without index.json is not an OCI layout (nor, without manifest.json, a dir: image)", s)
		}
		return Location{Kind: OCILayout, Raw: s, Path: s}, nil
	}
	kind, err := sniffTar(s)
	if err != nil {
		return Location{}, err
	}
	return Location{Kind: kind, Raw: s, Path: s}, nil
}

func sniffTar(p string) (Kind, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	tr := tar.NewReader(f) // skips file bodies by seeking
	hasIndex := false
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("%s: not a tar archive ferry can read: %w", p, err)
		}
		switch strings.TrimPrefix(h.Name, "./") {
		case "manifest.json":
			return DockerArchive, nil
		case "index.json":
			hasIndex = true
		}
	}
	if hasIndex {
		return OCIArchive, nil
	}
	return 0, fmt.Errorf("%s: a tar with neither manifest.json (docker-archive) nor index.json (oci-archive)", p)
}

// ForPull chooses the location a pull writes to when no format is given:
// an existing directory, or a path ending in a separator or without a
// .tar extension, is an OCI layout; a .tar file is a docker-archive when
// the pull is one image (singleImage) and an oci-archive otherwise.
func ForPull(p string, singleImage bool) Location {
	kind := OCILayout
	if fi, err := os.Stat(p); (err != nil || !fi.IsDir()) && strings.HasSuffix(strings.ToLower(p), ".tar") {
		kind = OCIArchive
		if singleImage {
			kind = DockerArchive
		}
	}
	return Location{Kind: kind, Raw: kind.String() + ":" + p, Path: p}
}
