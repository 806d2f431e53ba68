// Package progress draws a copy's progress: a bar per blob on a terminal
// (through mpb), a plain line every few seconds when the output is not a
// terminal, or nothing. It is fed by transfer's events and is the only
// place that knows how progress looks.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/internal/units"
	"github.com/ferry-dev/ferry/transfer"
)

// Mode selects how progress is shown.
type Mode int

const (
	// Auto draws bars on a terminal and plain lines otherwise.
	Auto Mode = iota
	// Bars draws a bar per blob.
	Bars
	// Plain prints a summary line every Interval.
	Plain
	// None shows nothing.
	None
)

// ParseMode parses "auto", "bars", "plain" or "none".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "auto", "":
		return Auto, nil
	case "bars", "tty":
		return Bars, nil
	case "plain":
		return Plain, nil
	case "none":
		return None, nil
	}
	return 0, fmt.Errorf("invalid progress mode %q: want auto, bars, plain or none", s)
}

// Interval is how often Plain mode prints a line.
var Interval = 5 * time.Second

// Reporter turns events into output. Its Event method is safe for
// concurrent use.
type Reporter struct {
	mode Mode
	w    io.Writer

	p       *mpb.Progress
	mu      sync.Mutex
	bars    map[v1.Hash]*mpb.Bar
	partial map[v1.Hash]int64

	total, done       atomic.Int64
	blobs, blobsDone  atomic.Int64
	stop              chan struct{}
	stopped           sync.WaitGroup
	start             time.Time
	retries, rewrites atomic.Int64
	closeOnce         sync.Once
}

// New returns a Reporter writing to w. In Auto mode, w gets bars when it is
// a terminal with a width, plain lines otherwise.
func New(w io.Writer, mode Mode) *Reporter {
	if mode == Auto {
		mode = Plain
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			// A terminal that reports no width (a pseudo-terminal nobody
			// sized, as some CI runners give) would get empty bars.
			if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
				mode = Bars
			}
		}
	}
	r := &Reporter{mode: mode, w: w, bars: map[v1.Hash]*mpb.Bar{}, partial: map[v1.Hash]int64{}, stop: make(chan struct{}), start: time.Now()}
	switch mode {
	case Bars:
		r.p = mpb.New(mpb.WithOutput(w), mpb.WithWidth(32), mpb.WithAutoRefresh())
	case Plain:
		r.stopped.Add(1)
		go r.ticker()
	}
	return r
}

// Event consumes one transfer event.
func (r *Reporter) Event(e transfer.Event) {
	switch e.Kind {
	case transfer.BlobStart:
		r.blobs.Add(1)
		r.total.Add(e.Size)
		if r.mode == Bars {
			r.mu.Lock()
			// Sizes as Human writes them ("164 B", "1.5 MiB"), not mpb's
			// "164.0 b".
			start := time.Now()
			r.bars[e.Digest] = r.p.AddBar(e.Size,
				mpb.PrependDecorators(decor.Name(short(e.Digest), decor.WC{W: 14, C: decor.DindentRight})),
				mpb.AppendDecorators(
					decor.Any(func(s decor.Statistics) string { return Human(s.Current) + " / " + Human(s.Total) }, decor.WC{W: 22}),
					decor.OnComplete(decor.Any(func(s decor.Statistics) string {
						return " " + Human(int64(float64(s.Current)/max(time.Since(start).Seconds(), 0.001))) + "/s"
					}, decor.WC{W: 14}), " done"),
				),
			)
			r.mu.Unlock()
		}
	case transfer.BlobProgress:
		if r.mode == Bars {
			r.mu.Lock()
			b := r.bars[e.Digest]
			r.mu.Unlock()
			if b != nil {
				b.SetCurrent(e.Done)
			}
		}
		r.mu.Lock()
		r.done.Add(e.Done - r.partial[e.Digest])
		r.partial[e.Digest] = e.Done
		r.mu.Unlock()
	case transfer.BlobCopied:
		r.blobsDone.Add(1)
		r.forget(e.Digest, false)
		r.finish(e.Digest, false)
	case transfer.BlobRetry:
		r.retries.Add(1)
		r.forget(e.Digest, true)
		r.finish(e.Digest, true)
		r.println(fmt.Sprintf("retrying %s: %v", short(e.Digest), e.Err))
	case transfer.DigestRewritten:
		r.rewrites.Add(1)
	}
}

// forget drops a blob's partial count; a retried blob's bytes are taken
// back, since they will pass again.
func (r *Reporter) forget(d v1.Hash, takeBack bool) {
	r.mu.Lock()
	if takeBack {
		r.done.Add(-r.partial[d])
	}
	delete(r.partial, d)
	r.mu.Unlock()
}

func (r *Reporter) finish(d v1.Hash, abort bool) {
	if r.mode != Bars {
		return
	}
	r.mu.Lock()
	b := r.bars[d]
	delete(r.bars, d)
	r.mu.Unlock()
	if b == nil {
		return
	}
	if abort {
		b.Abort(true)
		return
	}
	b.SetTotal(-1, true)
}

func (r *Reporter) println(s string) {
	switch r.mode {
	case Bars:
		fmt.Fprintln(r.p, s)
	case Plain:
		fmt.Fprintln(r.w, s)
	}
}

func (r *Reporter) ticker() {
	defer r.stopped.Done()
	t := time.NewTicker(Interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			fmt.Fprintln(r.w, r.line())
		}
	}
}

func (r *Reporter) line() string {
	secs := time.Since(r.start).Seconds()
	done := r.done.Load()
	return fmt.Sprintf("ferry: %d/%d blobs, %s of %s, %s/s", r.blobsDone.Load(), r.blobs.Load(),
		Human(done), Human(r.total.Load()), Human(int64(float64(done)/max(secs, 0.001))))
}

// Close stops drawing and waits for the output to settle. It may be
// called more than once (a deferred Close after an explicit one).
func (r *Reporter) Close() {
	r.closeOnce.Do(r.close)
}

func (r *Reporter) close() {
	switch r.mode {
	case Bars:
		r.mu.Lock()
		for d, b := range r.bars {
			b.Abort(false)
			delete(r.bars, d)
		}
		r.mu.Unlock()
		r.p.Wait()
	case Plain:
		close(r.stop)
		r.stopped.Wait()
	}
}

func short(d v1.Hash) string {
	if len(d.Hex) > 12 {
		return d.Hex[:12]
	}
	return d.Hex
}

// Human formats a byte count in binary units: "1.5 GiB".
func Human(n int64) string { return units.Bytes(n) }
