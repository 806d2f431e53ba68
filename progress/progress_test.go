package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/transfer"
)

func TestPlainLines(t *testing.T) {
	old := Interval
	Interval = 20 * time.Millisecond
	defer func() { Interval = old }()
	var buf bytes.Buffer
	r := New(&buf, Plain)
	d := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}
	r.Event(transfer.Event{Kind: transfer.BlobStart, Digest: d, Size: 2048})
	r.Event(transfer.Event{Kind: transfer.BlobProgress, Digest: d, Size: 2048, Done: 1024})
	time.Sleep(60 * time.Millisecond)
	r.Event(transfer.Event{Kind: transfer.BlobCopied, Digest: d, Size: 2048})
	r.Close()
	if !strings.Contains(buf.String(), "0/1 blobs, 1.0 KiB of 2.0 KiB") {
		t.Errorf("plain output: %q", buf.String())
	}
}

func TestNoneIsSilent(t *testing.T) {
	var buf bytes.Buffer
	r := New(&buf, None)
	r.Event(transfer.Event{Kind: transfer.BlobRetry})
	r.Close()
	if buf.Len() != 0 {
		t.Errorf("none wrote %q", buf.String())
	}
}

func TestHuman(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 1 << 30: "1.0 GiB"} {
		if got := Human(n); got != want {
			t.Errorf("Human(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestBarUnits: bars write sizes as Human does ("164 B"), not "164.0 b"
// (issue 18 item 16).
func TestBarUnits(t *testing.T) {
	var buf bytes.Buffer
	r := New(&buf, Bars)
	d := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("b", 64)}
	r.Event(transfer.Event{Kind: transfer.BlobStart, Digest: d, Size: 164})
	r.Event(transfer.Event{Kind: transfer.BlobProgress, Digest: d, Size: 164, Done: 100})
	time.Sleep(250 * time.Millisecond)
	r.Event(transfer.Event{Kind: transfer.BlobProgress, Digest: d, Size: 164, Done: 164})
	r.Event(transfer.Event{Kind: transfer.BlobCopied, Digest: d, Size: 164})
	r.Close()
	out := buf.String()
	if !strings.Contains(out, "164 B") || strings.Contains(out, " b") {
		t.Errorf("bars: %q", out)
	}
}
