package main

import (
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// options are a release run's settings.
type options struct {
	snapshot bool
	out      string
	targets  []string
}

// source is the commit being released, checked out in a clone.
type source struct {
	dir    string // the clone
	commit string
	time   time.Time // the commit's time: every mtime and date in the release
}

// release builds o.targets from HEAD into o.out.
func release(ctx context.Context, o options) error {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	if entries, err := os.ReadDir(o.out); err != nil {
		return err
	} else if len(entries) > 0 {
		return fmt.Errorf("--out %s is not empty", o.out)
	}
	tmp, err := os.MkdirTemp("", "ferry-release-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// The archives, SBOMs and SHA256SUMS are written into a staging
	// directory in --out and moved into place once all are written, so
	// that a failed run leaves --out as it found it: empty, not holding
	// archives that no SHA256SUMS lists.
	stage, err := os.MkdirTemp(o.out, ".staging-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	src, err := checkout(ctx, filepath.Join(tmp, "src"))
	if err != nil {
		return err
	}
	if !o.snapshot {
		tag, err := gitOut(ctx, src.dir, "describe", "--exact-match", "--tags", "--match", "v[0-9]*", "HEAD")
		if err != nil {
			return fmt.Errorf("HEAD (%s) carries no vX.Y.Z tag; use --snapshot to release it anyway", src.commit)
		}
		fmt.Fprintf(os.Stderr, "release: tag %s\n", tag)
	}

	docs := filepath.Join(tmp, "docs")
	if err := goCmd(ctx, src.dir, nil, "run", "./release", "docs", "--out", docs, "--date", unixString(src.time)); err != nil {
		return fmt.Errorf("generating completions and man pages: %w", err)
	}
	var extra []archiveFile
	for _, f := range []string{"README.md", "CHANGELOG.md"} {
		extra = append(extra, archiveFile{name: f, path: filepath.Join(src.dir, f), mode: 0o644})
	}
	err = filepath.WalkDir(docs, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(docs, p)
		extra = append(extra, archiveFile{name: filepath.ToSlash(rel), path: p, mode: 0o644})
		return err
	})
	if err != nil {
		return err
	}

	var written []string
	for _, t := range o.targets {
		goos, goarch, _ := strings.Cut(t, "/")
		exe := "ferry"
		if goos == "windows" {
			exe += ".exe"
		}
		bin := filepath.Join(tmp, "bin", goos+"_"+goarch, exe)
		env := []string{"GOOS=" + goos, "GOARCH=" + goarch, "CGO_ENABLED=0"}
		if err := goCmd(ctx, src.dir, env, "build", "-trimpath", "-buildvcs=true", "-o", bin, "./cmd/ferry"); err != nil {
			return fmt.Errorf("building %s: %w", t, err)
		}
		bi, err := buildinfo.ReadFile(bin)
		if err != nil {
			return fmt.Errorf("%s: %w", bin, err)
		}
		if err := checkStamp(bi, src.commit); err != nil {
			return fmt.Errorf("%s: %w", t, err)
		}
		base := fmt.Sprintf("ferry_%s_%s_%s", strings.TrimPrefix(bi.Main.Version, "v"), goos, goarch)
		files := append([]archiveFile{{name: exe, path: bin, mode: 0o755}}, extra...)
		name := base + ".tar.gz"
		write := writeTarGz
		if goos == "windows" {
			name, write = base+".zip", writeZip
		}
		if err := write(filepath.Join(stage, name), files, src.time); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		sbom := base + ".sbom.cdx.json"
		if err := writeSBOM(filepath.Join(stage, sbom), bi, goos, goarch, src.time); err != nil {
			return fmt.Errorf("%s: %w", sbom, err)
		}
		written = append(written, name, sbom)
		fmt.Fprintf(os.Stderr, "release: %s\n", name)
		if afterTarget != nil {
			if err := afterTarget(t); err != nil {
				return err
			}
		}
	}
	if err := writeSums(stage, written); err != nil {
		return err
	}
	return publish(stage, o.out, append(written, "SHA256SUMS"))
}

// afterTarget, when set (by tests), runs after each target's files are
// written; an error fails the release there.
var afterTarget func(target string) error

// publish moves names from stage into out, SHA256SUMS last; if a move
// fails, the files already moved are removed again.
func publish(stage, out string, names []string) error {
	for i, n := range names {
		if err := os.Rename(filepath.Join(stage, n), filepath.Join(out, n)); err != nil {
			for _, m := range names[:i] {
				os.Remove(filepath.Join(out, m))
			}
			return err
		}
	}
	return nil
}

// checkout clones the checkout's HEAD into dir and says which commit it is.
func checkout(ctx context.Context, dir string) (source, error) {
	top, err := gitOut(ctx, ".", "rev-parse", "--show-toplevel")
	if err != nil {
		return source{}, fmt.Errorf("not in ferry's git checkout: %w", err)
	}
	commit, err := gitOut(ctx, top, "rev-parse", "HEAD")
	if err != nil {
		return source{}, err
	}
	if _, err := gitOut(ctx, ".", "clone", "-q", "--no-checkout", top, dir); err != nil {
		return source{}, err
	}
	if _, err := gitOut(ctx, dir, "checkout", "-q", commit); err != nil {
		return source{}, err
	}
	// The tags travel with the clone (git clone copies them), so a tagged
	// HEAD builds as its version.
	ct, err := gitOut(ctx, dir, "show", "-s", "--format=%ct", commit)
	if err != nil {
		return source{}, err
	}
	secs, err := strconv.ParseInt(ct, 10, 64)
	if err != nil {
		return source{}, fmt.Errorf("commit time %q: %w", ct, err)
	}
	return source{dir: dir, commit: commit, time: time.Unix(secs, 0).UTC()}, nil
}

// checkStamp refuses a binary the toolchain did not stamp with the
// commit and a module version: ferry version would say devel.
func checkStamp(bi *buildinfo.BuildInfo, commit string) error {
	if v := bi.Main.Version; v == "" || v == "(devel)" {
		return fmt.Errorf("the toolchain stamped no module version (%q)", v)
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && s.Value == commit {
			return nil
		}
	}
	return fmt.Errorf("the binary does not carry vcs.revision %s", commit)
}

func gitOut(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// goCmd runs the go command in dir with env added; GOFLAGS is cleared so
// that a -buildvcs=false in the environment cannot unstamp the release.
func goCmd(ctx context.Context, dir string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "GOFLAGS="), env...)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	return cmd.Run()
}

// writeSums writes SHA256SUMS over names in dir, sorted, in sha256sum's
// format ("HEX  NAME"), which sha256sum -c and Get-FileHash can check.
func writeSums(dir string, names []string) error {
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		sum, err := fileSHA256(filepath.Join(dir, n))
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, n)
	}
	return os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(b.String()), 0o644)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
