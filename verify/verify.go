// Package verify proves what a location really holds: every manifest of an
// index, and every config and layer blob each manifest names, checked in
// the store itself — never through a descriptor's urls, so a registry that
// lacks a foreign base layer is told apart from one that hosts it (unlike
// crane validate, which follows the urls). With Deep, every blob is
// re-hashed, foreign blobs are fetched through their urls, config diff_ids
// are checked against the decompressed layers and the config's platform
// against the index entry.
package verify

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"

	"github.com/ferry-dev/ferry/blob"
	"github.com/ferry-dev/ferry/foreign"
	"github.com/ferry-dev/ferry/inspect"
	"github.com/ferry-dev/ferry/mediatype"
	"github.com/ferry-dev/ferry/platform"
	"github.com/ferry-dev/ferry/store"
)

// Status classifies one descriptor.
type Status string

// The statuses of a descriptor. Present and ForeignNotHosted and
// ForeignHosted are fine; the others are problems.
const (
	// Present: the store holds the blob with the declared size (and, with
	// Deep, the declared digest).
	Present Status = "present"
	// Missing: the store does not hold the blob.
	Missing Status = "missing"
	// ForeignNotHosted: a foreign layer the store does not hold, as
	// registries mirroring Windows images with keep do.
	ForeignNotHosted Status = "foreign-not-hosted"
	// ForeignHosted: a foreign layer the store holds anyway.
	ForeignHosted Status = "foreign-hosted"
	// SizeMismatch: the store holds a blob of another size.
	SizeMismatch Status = "size-mismatch"
	// DigestMismatch: the bytes do not hash to the digest (Deep).
	DigestMismatch Status = "digest-mismatch"
	// DiffIDMismatch: the decompressed layer does not hash to the
	// config's diff_id (Deep).
	DiffIDMismatch Status = "diff-id-mismatch"
	// PlatformMismatch: the config's os/architecture differ from the
	// index entry's (Deep).
	PlatformMismatch Status = "platform-mismatch"
	// TooLarge: the decompressed layer passed the expansion limit (Deep;
	// see WithMaxExpansion), as a decompression bomb does.
	TooLarge Status = "too-large"
	// Unreadable: the store or the urls failed otherwise; Detail says how.
	Unreadable Status = "unreadable"
)

// ErrExpansionLimit means a layer decompressed to more than the expansion
// limit allows (WithMaxExpansion).
var ErrExpansionLimit = errors.New("decompressed layer exceeds the expansion limit")

// DefaultMaxExpansion is how many times its compressed size a layer may
// decompress to under Deep. Real layers expand 2 to 10 times; gzip's
// ceiling is about 1030 (a run of zeros), so 3 GiB of zeros fit in 3 MB.
const DefaultMaxExpansion = 100

// minExpansionLimit is the least a layer may decompress to whatever its
// compressed size, so that small layers holding sparse files pass.
const minExpansionLimit = 64 << 20

// Problem reports whether s is a problem.
func (s Status) Problem() bool {
	return s != Present && s != ForeignNotHosted && s != ForeignHosted
}

// Finding is the verdict on one descriptor.
type Finding struct {
	// Manifest is the image manifest the descriptor belongs to.
	Manifest v1.Hash `json:"manifest"`
	// Platform is the manifest's platform, for messages.
	Platform string `json:"platform"`
	// Kind is config, layer or manifest.
	Kind string `json:"kind"`
	// Descriptor is what was checked.
	Descriptor v1.Descriptor `json:"descriptor"`
	// Status is the verdict.
	Status Status `json:"status"`
	// Detail explains a problem, or says how a foreign blob was checked.
	Detail string `json:"detail,omitempty"`
}

// Report is what Verify found.
type Report struct {
	// Root is the manifest or index the location names.
	Root v1.Descriptor `json:"root"`
	// Manifests counts the manifests and indexes checked, as
	// transfer.Result.Manifests counts those a copy writes: an index of
	// two platforms is 3.
	Manifests int `json:"manifests"`
	// Findings has one entry per descriptor checked.
	Findings []Finding `json:"findings"`
	// Deep says whether bytes were re-hashed.
	Deep bool `json:"deep"`
}

// Problems returns the findings that are problems.
func (r *Report) Problems() []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Status.Problem() {
			out = append(out, f)
		}
	}
	return out
}

// Count returns how many findings have status s.
func (r *Report) Count(s Status) int {
	n := 0
	for _, f := range r.Findings {
		if f.Status == s {
			n++
		}
	}
	return n
}

type options struct {
	deep         bool
	fetcher      *foreign.Fetcher
	maxExpansion int64
}

// Option configures Verify.
type Option func(*options) error

// WithDeep re-hashes every blob, fetches foreign blobs through their urls
// and checks diff_ids and platforms. The default is off: presence and
// size only.
func WithDeep(on bool) Option { return func(o *options) error { o.deep = on; return nil } }

// WithMaxExpansion bounds what Deep decompresses of each layer to ratio
// times its compressed size (at least 64 MiB), so that a decompression
// bomb is reported as TooLarge instead of running as long as its data.
// 0 means no limit; the default is DefaultMaxExpansion.
func WithMaxExpansion(ratio int) Option {
	return func(o *options) error {
		if ratio < 0 {
			return fmt.Errorf("verify: negative expansion limit %d", ratio)
		}
		o.maxExpansion = int64(ratio)
		return nil
	}
}

// WithFetcher sets the fetcher Deep uses for foreign blobs the store does
// not hold. The default is foreign.NewFetcher() with its default policy.
func WithFetcher(f *foreign.Fetcher) Option {
	return func(o *options) error {
		if f == nil {
			return errors.New("verify: nil fetcher")
		}
		o.fetcher = f
		return nil
	}
}

// Verify checks what src holds. It returns an error only when the walk
// itself cannot proceed (the root or a manifest cannot be read); every
// blob-level problem is a Finding.
func Verify(ctx context.Context, src store.Source, opts ...Option) (*Report, error) {
	o := &options{maxExpansion: DefaultMaxExpansion}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	if o.deep && o.fetcher == nil {
		f, err := foreign.NewFetcher()
		if err != nil {
			return nil, err
		}
		o.fetcher = f
	}
	img, err := inspect.Inspect(ctx, src)
	if err != nil {
		return nil, err
	}
	r := &Report{Root: img.Descriptor, Manifests: len(img.Manifests), Deep: o.deep}
	if img.Descriptor.MediaType.IsIndex() {
		r.Manifests++
	}
	seen := map[v1.Hash]Finding{}
	for _, m := range img.Manifests {
		check := func(kind string, d v1.Descriptor, diffID *v1.Hash) {
			f, ok := seen[d.Digest]
			if !ok || diffID != nil {
				f = o.check(ctx, src, d, diffID)
				seen[d.Digest] = f
			}
			f.Manifest, f.Platform, f.Kind = m.Descriptor.Digest, m.Platform, kind
			r.Findings = append(r.Findings, f)
		}
		check("config", m.Config, nil)
		var cfg *v1.ConfigFile
		if o.deep && !seen[m.Config.Digest].Status.Problem() {
			cfg = o.platformCheck(ctx, src, m, r)
		}
		for i, l := range m.Layers {
			var diffID *v1.Hash
			if cfg != nil && i < len(cfg.RootFS.DiffIDs) {
				diffID = &cfg.RootFS.DiffIDs[i]
			}
			check("layer", l.Descriptor, diffID)
		}
		if cfg != nil && len(cfg.RootFS.DiffIDs) != len(m.Layers) {
			r.Findings = append(r.Findings, Finding{Manifest: m.Descriptor.Digest, Platform: m.Platform, Kind: "config", Descriptor: m.Config, Status: DiffIDMismatch,
				Detail: fmt.Sprintf("%d diff_ids for %d layers", len(cfg.RootFS.DiffIDs), len(m.Layers))})
		}
	}
	return r, nil
}

// platformCheck reads the config and compares its platform with the index
// entry's; it returns the config for the diff_id checks.
func (o *options) platformCheck(ctx context.Context, src store.Source, m inspect.Manifest, r *Report) *v1.ConfigFile {
	raw, err := inspect.ReadConfig(ctx, src, m.Config)
	if err != nil {
		return nil
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		r.Findings = append(r.Findings, Finding{Manifest: m.Descriptor.Digest, Platform: m.Platform, Kind: "config", Descriptor: m.Config, Status: Unreadable, Detail: err.Error()})
		return nil
	}
	if p := m.Descriptor.Platform; p != nil && (p.OS != cfg.OS || p.Architecture != cfg.Architecture) {
		r.Findings = append(r.Findings, Finding{Manifest: m.Descriptor.Digest, Platform: m.Platform, Kind: "config", Descriptor: m.Config, Status: PlatformMismatch,
			Detail: fmt.Sprintf("index entry says %s, config says %s", platform.Format(p), platform.Format(cfg.Platform()))})
	}
	return cfg
}

// check classifies one blob.
func (o *options) check(ctx context.Context, src store.Source, d v1.Descriptor, diffID *v1.Hash) Finding {
	f := Finding{Descriptor: d}
	isForeign := mediatype.IsForeign(string(d.MediaType)) || len(d.URLs) > 0
	size, err := statBlob(ctx, src, d)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if !isForeign {
			f.Status = Missing
			return f
		}
		f.Status = ForeignNotHosted
		if !o.deep {
			return f
		}
		rc, err := o.fetcher.Open(ctx, d)
		if err != nil {
			f.Status, f.Detail = Unreadable, fmt.Sprintf("not hosted, and its urls failed: %v", err)
			return f
		}
		defer rc.Close()
		o.hash(&f, rc, diffID, "fetched from its urls")
		return f
	case err != nil:
		f.Status, f.Detail = Unreadable, err.Error()
		return f
	case size >= 0 && size != d.Size:
		f.Status, f.Detail = SizeMismatch, fmt.Sprintf("holds %d bytes, the descriptor says %d", size, d.Size)
		return f
	}
	f.Status = Present
	if isForeign {
		f.Status = ForeignHosted
	}
	if !o.deep {
		return f
	}
	rc, err := src.FetchBlob(ctx, d)
	if err != nil {
		f.Status, f.Detail = Unreadable, err.Error()
		return f
	}
	defer rc.Close()
	o.hash(&f, rc, diffID, "")
	return f
}

// statBlob asks the store for a blob's size, or opens and closes it when
// the store cannot say otherwise (-1: size unknown).
func statBlob(ctx context.Context, src store.Source, d v1.Descriptor) (int64, error) {
	if s, ok := src.(store.BlobStater); ok {
		return s.StatBlob(ctx, d)
	}
	rc, err := src.FetchBlob(ctx, d)
	if err != nil {
		return 0, err
	}
	rc.Close()
	return -1, nil
}

// hash streams r through the digest check and, when diffID is set, a
// decompressor and the diff_id check, in one pass. A stream that checks
// its own digest (the fetcher's) is not hashed a second time.
func (o *options) hash(f *Finding, r io.Reader, diffID *v1.Hash, how string) {
	vr, err := blob.Ensure(r, f.Descriptor.Digest, f.Descriptor.Size, "")
	if err != nil {
		f.Status, f.Detail = Unreadable, err.Error()
		return
	}
	var diff hash.Hash
	var w io.Writer = io.Discard
	var pw *io.PipeWriter
	done := make(chan error, 1)
	if diffID != nil {
		diff = sha256.New()
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		w = pw
		var out io.Writer = diff
		if limit := o.expansionLimit(f.Descriptor.Size); limit > 0 {
			out = &limitWriter{w: diff, left: limit, ratio: o.maxExpansion}
		}
		go func() {
			err := Decompress(pr, out)
			if err != nil {
				io.Copy(io.Discard, pr) // let the digest check finish: a corrupt blob is a digest problem first
			}
			done <- err
		}()
	}
	_, err = io.Copy(w, vr)
	var derr error
	if pw != nil {
		pw.CloseWithError(err)
		derr = <-done
	}
	switch {
	case errors.Is(err, blob.ErrDigestMismatch):
		f.Status, f.Detail = DigestMismatch, err.Error()
		return
	case errors.Is(err, blob.ErrSizeMismatch):
		f.Status, f.Detail = SizeMismatch, err.Error()
		return
	case err != nil:
		f.Status, f.Detail = Unreadable, err.Error()
		return
	case errors.Is(derr, ErrExpansionLimit):
		f.Status, f.Detail = TooLarge, derr.Error()
		return
	case derr != nil:
		f.Status, f.Detail = DiffIDMismatch, fmt.Sprintf("cannot decompress: %v", derr)
		return
	}
	if diff != nil {
		if got := "sha256:" + hex.EncodeToString(diff.Sum(nil)); got != diffID.String() {
			f.Status, f.Detail = DiffIDMismatch, fmt.Sprintf("decompressed layer hashes to %s, the config says %s", got, diffID)
			return
		}
	}
	f.Detail = how
}

// expansionLimit is how many decompressed bytes a layer of size bytes may
// give, or 0 for no limit.
func (o *options) expansionLimit(size int64) int64 {
	if o.maxExpansion == 0 {
		return 0
	}
	if size > math.MaxInt64/o.maxExpansion {
		return math.MaxInt64
	}
	return max(size*o.maxExpansion, minExpansionLimit)
}

// limitWriter fails with ErrExpansionLimit once more than left bytes are
// written.
type limitWriter struct {
	w     io.Writer
	left  int64
	ratio int64
	limit int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.limit == 0 {
		l.limit = l.left
	}
	if int64(len(p)) > l.left {
		return 0, fmt.Errorf("%w: more than %d bytes (%d times the compressed size, at least 64 MiB): a decompression bomb, or a layer that needs a higher limit", ErrExpansionLimit, l.limit, l.ratio)
	}
	l.left -= int64(len(p))
	return l.w.Write(p)
}

// Decompress writes the uncompressed form of r (gzip, zstd or a plain
// tar, told apart by magic bytes) to w.
func Decompress(r io.Reader, w io.Writer) error {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(4)
	var src io.Reader = br
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		defer zr.Close()
		src = zr
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return err
		}
		defer zr.Close()
		src = zr
	}
	if _, err := io.Copy(w, src); err != nil {
		return err
	}
	_, err := io.Copy(io.Discard, br) // trailing bytes after the stream still count for the digest
	return err
}
