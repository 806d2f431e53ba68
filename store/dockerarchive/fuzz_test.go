package dockerarchive

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func tarBytes(files ...[2]string) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range files {
		tw.WriteHeader(&tar.Header{Name: f[0], Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f[1]))})
		tw.Write([]byte(f[1]))
	}
	tw.Close()
	return b.Bytes()
}

const (
	seedConfig   = `{"os":"windows","architecture":"amd64","rootfs":{"type":"layers","diff_ids":["sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"]}}`
	seedManifest = `[{"Config":"c.json","RepoTags":["app:1"],"Layers":["l/layer.tar"]}]`
)

// readAll opens the archive at p and reads everything it offers; it must
// never panic, whatever the bytes.
func readAll(t *testing.T, p string) {
	s, err := OpenSource(p, "")
	if err != nil {
		return
	}
	defer s.Close()
	ctx := context.Background()
	root, _ := s.Resolve(ctx)
	if _, err := s.FetchManifest(ctx, root); err != nil {
		return
	}
	for d := range s.files {
		if rc, err := s.FetchBlob(ctx, v1.Descriptor{Digest: d}); err == nil {
			io.Copy(io.Discard, rc)
			rc.Close()
		}
	}
}

// FuzzManifestJSON feeds arbitrary manifest.json and config files, with
// one layer, to the reader.
func FuzzManifestJSON(f *testing.F) {
	f.Add(seedManifest, seedConfig)
	f.Add(`[{"Config":"c.json","Layers":["../x"]}]`, seedConfig)
	f.Add(`[{"Config":"c.json","Layers":["l/layer.tar"],"LayerSources":{"sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef":{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","size":3,"digest":"sha256:00","urls":["https://x"]}}}]`, seedConfig)
	f.Fuzz(func(t *testing.T, manifest, config string) {
		p := filepath.Join(t.TempDir(), "a.tar")
		if err := os.WriteFile(p, tarBytes([2]string{"c.json", config}, [2]string{"l/layer.tar", ""}, [2]string{"manifest.json", manifest}), 0o644); err != nil {
			t.Fatal(err)
		}
		readAll(t, p)
	})
}

// FuzzArchive feeds arbitrary bytes as the archive itself.
func FuzzArchive(f *testing.F) {
	f.Add(tarBytes([2]string{"c.json", seedConfig}, [2]string{"l/layer.tar", ""}, [2]string{"manifest.json", seedManifest}))
	f.Add(tarBytes([2]string{"manifest.json", "[]"}, [2]string{"index.json", `{"schemaVersion":2,"manifests":[]}`}))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "a.tar")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		readAll(t, p)
	})
}
