package syncer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferry-dev/ferry/internal/redact"
	"github.com/ferry-dev/ferry/location"
	"github.com/ferry-dev/ferry/opener"
	"github.com/ferry-dev/ferry/platform"
	"github.com/ferry-dev/ferry/store"
	"github.com/ferry-dev/ferry/transfer"
)

// Status is what a run did (or, dry, would do) with one image.
type Status string

// The statuses of an image.
const (
	// Copied: the image was copied (Plan: would be).
	Copied Status = "copied"
	// Skipped: the destination already has the digest the copy would write.
	Skipped Status = "skipped"
	// Failed: planning or copying the image failed; Error says why.
	Failed Status = "failed"
)

// Image is one image of a run: planned, then copied or skipped, or
// failed.
type Image struct {
	// Source is the full source reference, Destination where it lands.
	Source      string `json:"source"`
	Destination string `json:"destination"`
	// Digest is the manifest or index written (or, skipped, already
	// there; planned, to be written).
	Digest string `json:"digest,omitempty"`
	Status Status `json:"status"`
	// Reason says why an image is skipped, Error why it failed.
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
	// Bytes are the blob bytes this image's copy transferred (blobs it
	// shared with another image of the run count once, with the first),
	// for an image that failed those moved before it failed; for an
	// image skipped, those of the referrers copied to it.
	Bytes int64 `json:"bytes"`
	// Copy is the copy's summary (nil unless copied, or skipped with its
	// referrers copied).
	Copy *transfer.Result `json:"copy,omitempty"`

	ref       name.Reference
	src       store.Source
	planned   *transfer.Planned
	base      []transfer.Option // copy options but the platforms
	specs     []platform.Spec   // the platforms selected
	keepUBR   int
	repoKey   string
	referrers bool
	op        *opener.Opener // with the source registry's access
}

// Totals sum a run.
type Totals struct {
	Images  int     `json:"images"`
	Copied  int     `json:"copied"`
	Skipped int     `json:"skipped"`
	Failed  int     `json:"failed"`
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
}

// Report is a run's outcome: every image in plan order, and totals.
type Report struct {
	DryRun bool     `json:"dryRun,omitempty"`
	Images []*Image `json:"images"`
	Totals Totals   `json:"totals"`
	// Warnings name the repositories whose selection (every tag, a tag
	// regex, a semver range) matched no tag: nothing of them is synced,
	// and that is no failure (skopeo warns too).
	Warnings []string `json:"warnings,omitempty"`
}

// BlobsPerImage is how many blobs one image's copy moves at once, as
// ferry copy does by default; it is also the least number of blob streams
// a run allows across its images.
const BlobsPerImage = 4

// DefaultJobs is how many images a run copies at once unless
// Options.Jobs says otherwise.
const DefaultJobs = 16

// ErrImagesFailed is returned (wrapped) when some images failed and the
// others were synced.
var ErrImagesFailed = errors.New("some images failed")

// Options configure Run.
type Options struct {
	// Opener opens the stores; required.
	Opener *opener.Opener
	// Jobs is how many images are planned and copied at once
	// (DefaultJobs). At most max(Jobs, BlobsPerImage) blobs stream at
	// once across them, each image moving up to BlobsPerImage: an image
	// waiting for a blob another image is moving holds no stream, so a
	// shared base layer does not hold up the other images' own layers
	// (transfer.Ledger's LimitMoves).
	Jobs int
	// Foreign is the foreign-layer policy unless the file sets one; nil:
	// keep for a registry destination, include for a file or layout.
	Foreign *transfer.ForeignPolicy
	// Platforms select index entries unless the file selects some.
	Platforms []platform.Spec
	// Copy are further copy options for every image (fetcher, retries,
	// blob jobs); not WithForeign nor WithPlatforms, which come from the
	// fields above and the file.
	Copy []transfer.Option
	// Referrers copies the referrers of every image copied (and of those
	// up to date), unless the file says otherwise; see
	// transfer.WithReferrers.
	Referrers bool
	// DryRun plans and writes nothing.
	DryRun bool
	// Done is called as each image is done (planned, for a dry run), from
	// several goroutines one at a time.
	Done func(*Image)
}

// Run mirrors what cfg lists to dest (HOST[/PREFIX], oci-archive:FILE or
// oci:DIR). It returns the report and, when some images failed, an error
// wrapping ErrImagesFailed; when ctx ends first, one wrapping ctx.Err()
// (the images done stay, a bundle is not written); other errors (a bad
// destination) come before anything is done.
func Run(ctx context.Context, cfg *Config, dest string, o Options) (*Report, error) {
	start := time.Now()
	if o.Jobs < 1 {
		o.Jobs = DefaultJobs
	}
	if o.Done == nil {
		o.Done = func(*Image) {}
	}
	d, err := parseDestination(dest, o.Opener.Network().Insecure)
	if err != nil {
		return nil, err
	}
	// A bundle that cannot be created fails before the plan's requests.
	if !o.DryRun {
		if err := d.open(); err != nil {
			return nil, err
		}
	}
	rep := &Report{DryRun: o.DryRun}
	rep.Images, rep.Warnings = plan(ctx, cfg, d, o)
	defer func() {
		for _, img := range rep.Images {
			if img.src != nil {
				img.src.Close()
			}
		}
	}()
	execute(ctx, rep.Images, d, o)
	// Interrupted (Ctrl-C, SIGTERM): the images done stay, but a bundle
	// is not written: a partial one would replace the last run's file.
	interrupted := ctx.Err()
	anyWritten := false
	for _, img := range rep.Images {
		rep.Totals.Images++
		switch img.Status {
		case Copied:
			rep.Totals.Copied++
			anyWritten = true
		case Skipped:
			rep.Totals.Skipped++
		case Failed:
			rep.Totals.Failed++
		}
		rep.Totals.Bytes += img.Bytes
	}
	if !o.DryRun {
		if err := d.finish(anyWritten && interrupted == nil); err != nil {
			return rep, err
		}
	}
	rep.Totals.Seconds = time.Since(start).Seconds()
	if interrupted != nil {
		return rep, d.interrupted(interrupted, rep)
	}
	if rep.Totals.Failed > 0 {
		return rep, fmt.Errorf("%w: %d of %d", ErrImagesFailed, rep.Totals.Failed, rep.Totals.Images)
	}
	return rep, nil
}

// plan lists the images of cfg in file order, each resolved and filtered,
// with what its copy would write.
func plan(ctx context.Context, cfg *Config, d *destination, o Options) ([]*Image, []string) {
	var imgs []*Image
	var warnings []string
	run := runSettings(o, d)
	failed := func(src, reason string) {
		imgs = append(imgs, &Image{Source: src, Status: Failed, Error: reason})
	}
	for _, r := range cfg.Registries {
		op, err := o.Opener.WithAccess(opener.Access{Username: r.Username, Password: r.Password, Insecure: !r.TLSVerify, CertDir: r.CertDir})
		if err != nil {
			failed(r.Name, failure(err))
			continue
		}
		for _, repo := range r.Repos {
			full := r.Name + "/" + repo.Name
			set := run.over(r.Settings).over(repo.Settings)
			tags, err := selectTags(ctx, op, full, repo)
			if err != nil {
				failed(full, failure(err))
				continue
			}
			if len(tags) == 0 {
				warnings = append(warnings, emptySelection(full, repo))
			}
			for _, tag := range tags {
				imgs = append(imgs, &Image{Source: full + sepFor(tag) + tag, base: append(slices.Clip(o.Copy), transfer.WithForeign(*set.Foreign)), specs: set.Platforms, referrers: *set.Referrers, keepUBR: set.KeepUBR, repoKey: full, op: op})
			}
		}
	}
	parallel(ctx, imgs, o.Jobs, func(ctx context.Context, img *Image) {
		if img.Status == Failed {
			return
		}
		resolve(ctx, img)
	})
	imgs = keepUBR(ctx, imgs, o.Jobs)
	// Two registries' repositories of the same path land at one
	// destination: the later one is refused rather than overwrite.
	first := map[string]string{}
	for _, img := range imgs {
		if img.ref == nil {
			continue
		}
		img.Destination = d.name(img.ref)
		if other, ok := first[img.Destination]; ok && img.Status != Failed {
			img.Status, img.Error = Failed, fmt.Sprintf("%s also lands at %s (ferry keeps repository paths without the registry host: give one registry its own DEST prefix)", other, img.Destination)
			continue
		}
		first[img.Destination] = img.Source
	}
	return imgs, warnings
}

// emptySelection says that repository full's selection matched no tag.
func emptySelection(full string, repo Repo) string {
	var sel []string
	if repo.All {
		sel = append(sel, "images: [] (every tag)")
	}
	if repo.Regex != nil {
		sel = append(sel, "images-by-tag-regex "+repo.Regex.String())
	}
	if repo.Semver != nil {
		sel = append(sel, "images-by-semver "+repo.Semver.String())
	}
	return fmt.Sprintf("%s: no tag the registry lists matches %s: nothing of it is synced", full, strings.Join(sel, " or "))
}

// sepFor is "@" before a digest, ":" before a tag.
func sepFor(tag string) string {
	if strings.Contains(tag, ":") {
		return "@"
	}
	return ":"
}

// runSettings are the run's settings, under which the file's apply
// (Settings.over): its platforms, its referrers choice and its foreign
// policy, else keep for a registry destination and include for a file or
// layout, as copy does.
func runSettings(o Options, d *destination) Settings {
	pol := transfer.Keep
	if d.Local() {
		pol = transfer.Include
	}
	if o.Foreign != nil {
		pol = *o.Foreign
	}
	referrers := o.Referrers
	return Settings{Platforms: o.Platforms, Foreign: &pol, Referrers: &referrers}
}

// opts are the image's copy options.
func (img *Image) opts() []transfer.Option {
	out := append([]transfer.Option(nil), img.base...)
	if len(img.specs) > 0 {
		out = append(out, transfer.WithPlatforms(img.specs...))
	}
	if img.referrers {
		out = append(out, transfer.WithReferrers())
	}
	return out
}

// selectTags lists the tags (or digests) of repository full that repo
// selects: those listed, then the others the registry lists that a
// selector matches, in its order.
func selectTags(ctx context.Context, op *opener.Opener, full string, repo Repo) ([]string, error) {
	if !repo.All && repo.Regex == nil && repo.Semver == nil {
		return repo.Tags, nil
	}
	loc, err := op.Network().Parse(full)
	if err != nil {
		return nil, err
	}
	r, err := op.Repository(ctx, loc, false)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	all, err := r.Tags(ctx)
	if err != nil {
		return nil, fmt.Errorf("list tags of %s: %w", full, err)
	}
	out := slices.Clone(repo.Tags)
	for _, t := range all {
		switch {
		case slices.Contains(repo.Tags, t):
			continue
		case repo.All:
		case repo.Regex != nil && repo.Regex.MatchString(t):
		case repo.Semver != nil && semverMatch(repo.Semver, t):
		default:
			continue
		}
		out = append(out, t)
	}
	return out, nil
}

// semverMatch says whether tag is a version within c, as skopeo decides
// it (tags that are no version never match).
func semverMatch(c *semver.Constraints, tag string) bool {
	v, err := semver.NewVersion(tag)
	return err == nil && c.Check(v)
}

// resolve opens the image's source and plans its copy; failures mark it
// Failed with the reason.
func resolve(ctx context.Context, img *Image) {
	fail := func(err error) { img.Status, img.Error = Failed, failure(err) }
	loc, err := img.op.Network().Parse(img.Source)
	if err != nil {
		fail(err)
		return
	}
	img.ref = loc.Ref
	src, err := img.op.Source(ctx, loc)
	if err != nil {
		fail(err)
		return
	}
	img.src = src
	p, err := transfer.Plan(ctx, src, img.opts()...)
	if err != nil {
		fail(err)
		return
	}
	img.planned = p
	img.Digest = p.Written.Digest.String()
	img.Status = Copied
}

// execute copies the planned images, jobs at a time, skipping those the
// destination already has; one failure does not stop the others.
func execute(ctx context.Context, imgs []*Image, d *destination, o Options) {
	ledger := transfer.NewLedger().LimitMoves(max(o.Jobs, BlobsPerImage))
	var mu sync.Mutex
	var targets []store.Target
	defer func() {
		for _, t := range targets {
			t.Close()
		}
	}()
	var done sync.Mutex
	report := func(img *Image) { done.Lock(); o.Done(img); done.Unlock() }
	parallel(ctx, imgs, o.Jobs, func(ctx context.Context, img *Image) {
		if img.Status == Failed {
			report(img)
			return
		}
		if img.referrers && d.kind == location.OCIArchive {
			// As transfer.Copy refuses it, before anything moves; said
			// in the plan of a dry run too.
			img.Status, img.Error = Failed, fmt.Errorf("%s %w", d.dir, transfer.ErrCannotRecordReferrers).Error()
			report(img)
			return
		}
		if o.DryRun && d.kind == location.OCIArchive {
			report(img) // a new file: everything is copied
			return
		}
		t, now, err := d.target(ctx, o.Opener, img.ref, img.src)
		if err != nil {
			img.Status, img.Error = Failed, failure(err)
			report(img)
			return
		}
		mu.Lock()
		targets = append(targets, t)
		mu.Unlock()
		if now.Digest == img.planned.Written.Digest {
			img.Status, img.Reason = Skipped, "the destination already has "+now.Digest.String()
			if img.referrers && !o.DryRun {
				// New signatures of an image otherwise up to date.
				res, err := transfer.CopyReferrers(ctx, img.src, t, img.planned.Source, append(img.opts(), transfer.WithLedger(ledger))...)
				if err != nil {
					// Failed, not up to date: the reason goes.
					img.Status, img.Reason, img.Error = Failed, "", failure(err)
				} else {
					img.Copy, img.Bytes = res, res.Bytes
				}
			}
			report(img)
			return
		}
		if o.DryRun {
			if now.Digest.Hex != "" {
				img.Reason = "the destination has " + now.Digest.String()
			}
			report(img)
			return
		}
		opts := append(img.opts(), transfer.WithRoot(img.planned.Source, img.planned.SourceRaw), transfer.WithLedger(ledger))
		res, err := transfer.Copy(ctx, img.src, t, opts...)
		if err != nil {
			img.Status, img.Error = Failed, failure(err)
			if res != nil {
				img.Bytes = res.Bytes // moved before it failed
			}
			report(img)
			return
		}
		img.Copy, img.Bytes, img.Digest = res, res.Bytes, res.Written.Digest.String()
		report(img)
	})
}

// parallel runs fn for each image, jobs at a time, and waits.
func parallel(ctx context.Context, imgs []*Image, jobs int, fn func(context.Context, *Image)) {
	sem := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	for _, img := range imgs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(ctx, img)
		}()
	}
	wg.Wait()
}

// failure is err as an image's Error: with the credentials of signed URLs
// hidden (Go's HTTP errors quote a failed request's URL whole, and a
// registry's redirect to its storage may be presigned), since the report
// is printed and written as JSON.
func failure(err error) string { return redact.Secrets(err.Error()) }
