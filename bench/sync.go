package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// The sync scenario mirrors many images sharing one base, as a nightly
// Windows mirror does: 8 tags of one repository and 2 app repositories,
// each the bench image plus a small layer of its own, into a fresh
// destination prefix; then the same again, which has nothing to do (the
// no-op rerun, reported as sync-rerun). Peers: skopeo sync (same YAML;
// it flattens repository paths), regsync (pinned with regctl), and a loop
// of crane copy.

// syncImages are the images the sync scenario mirrors: repository -> tags.
var syncImages = []struct {
	repo string
	tags []string
}{
	{"win/servercore", []string{"t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8"}},
	{"apps/one", []string{"v1"}},
	{"apps/two", []string{"v1"}},
}

// syncTools are the tools the sync scenario compares.
var syncTools = map[string]bool{"ferry": true, "skopeo": true, "regsync": true, "crane": true}

// seedSync pushes the sync scenario's images to the source: win/app:v1
// plus a 1 MiB layer of its own each.
func seedSync(ferryBin, src, work string, env []string) error {
	for i, im := range syncImages {
		for j, tag := range im.tags {
			dir := filepath.Join(work, "sync-layer", fmt.Sprintf("%d-%d", i, j))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			b := make([]byte, 1<<20)
			rng := rand.New(rand.NewPCG(uint64(i), uint64(j)))
			for k := range b {
				b[k] = byte(rng.Uint32())
			}
			if err := os.WriteFile(filepath.Join(dir, "app.bin"), b, 0o644); err != nil {
				return err
			}
			argv := []string{ferryBin, "append", "--progress", "none", "--base", src + "/win/app:v1", "--layer", dir, "-t", src + "/" + im.repo + ":" + tag}
			if m := measure(argv, env); m.err != nil {
				return m.err
			}
		}
	}
	return nil
}

// syncArgv writes the tool's configuration for mirroring src into
// dst/prefix and returns its command line.
func (t *tools) syncArgv(tool, src, dst, prefix, work string) ([]string, error) {
	cfg := filepath.Join(work, prefix+".yaml")
	var b strings.Builder
	switch tool {
	case "ferry", "skopeo":
		fmt.Fprintf(&b, "%s:\n  tls-verify: false\n  images:\n", src)
		for _, im := range syncImages {
			fmt.Fprintf(&b, "    %s: [%s]\n", im.repo, strings.Join(im.tags, ", "))
		}
	case "regsync":
		fmt.Fprintf(&b, "version: 1\ncreds:\n  - registry: %s\n    tls: disabled\n  - registry: %s\n    tls: disabled\ndefaults:\n  parallel: 4\nsync:\n", src, dst)
		for _, im := range syncImages {
			fmt.Fprintf(&b, "  - source: %s/%s\n    target: %s/%s/%s\n    type: repository\n    tags:\n      allow: [%q]\n",
				src, im.repo, dst, prefix, im.repo, "^("+strings.Join(im.tags, "|")+")$")
		}
	case "crane":
		var cmds []string
		for _, im := range syncImages {
			for _, tag := range im.tags {
				cmds = append(cmds, fmt.Sprintf("%s copy %s/%s:%s %s/%s/%s:%s", t.bin["crane"], src, im.repo, tag, dst, prefix, im.repo, tag))
			}
		}
		return []string{"/bin/sh", "-c", strings.Join(cmds, " && ")}, nil
	default:
		return nil, fmt.Errorf("%s sync: %w", tool, errUnsupported)
	}
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	switch tool {
	case "ferry":
		return []string{t.bin["ferry"], "sync", "--progress", "none", cfg, dst + "/" + prefix}, nil
	case "skopeo":
		return []string{t.bin["skopeo"], "sync", "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false", cfg, dst + "/" + prefix}, nil
	}
	return []string{t.bin["regsync"], "once", "-c", cfg}, nil
}

// runSync runs tool's first sync into a fresh prefix and its no-op rerun,
// and checks that the last image landed (skopeo: under the flattened path).
func runSync(t *tools, tool string, r int, src, dst, work string) (first, rerun measurement) {
	prefix := fmt.Sprintf("sync-%s-%d", tool, r)
	argv, err := t.syncArgv(tool, src, dst, prefix, work)
	if err != nil {
		return measurement{err: err}, measurement{err: err}
	}
	if tool == "skopeo" {
		forgetBlobLocations(t.env)
	}
	first = measure(argv, t.env)
	if first.err != nil {
		return first, measurement{err: first.err}
	}
	last := syncImages[len(syncImages)-1]
	repo := prefix + "/" + last.repo
	if tool == "skopeo" {
		repo = prefix + "/" + filepath.Base(last.repo)
	}
	if head(dst, repo, last.tags[0]) == "" {
		first.err = fmt.Errorf("%s sync: %s:%s did not land", tool, repo, last.tags[0])
	}
	rerun = measure(argv, t.env)
	return first, rerun
}
