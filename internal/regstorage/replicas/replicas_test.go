package replicas

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

func TestAnnounceSameSecret(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	a, err := Announce(ctx, d, "s3cret", false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Announce(ctx, d, "s3cret", true)
	if err != nil {
		t.Fatalf("a second replica with the same secret: %v", err)
	}
	live, err := Live(ctx, d)
	if err != nil || len(live) != 2 {
		t.Fatalf("Live: %v, %v; want two markers", live, err)
	}
	ro := 0
	for _, m := range live {
		if m.ReadOnly {
			ro++
		}
		if m.Secret != Fingerprint("s3cret") || strings.Contains(m.Secret, "s3cret") {
			t.Errorf("marker secret %q", m.Secret)
		}
	}
	if ro != 1 {
		t.Errorf("%d read-only markers, want 1", ro)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if live, err := Live(ctx, d); err != nil || len(live) != 0 {
		t.Errorf("after Close: %v, %v; want none", live, err)
	}
}

func TestAnnounceOtherSecretRefused(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	a, err := Announce(ctx, d, "one", false)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	_, err = Announce(ctx, d, "two", false)
	if !errors.Is(err, ErrSecretMismatch) || !strings.Contains(err.Error(), a.path) {
		t.Fatalf("err = %v, want ErrSecretMismatch naming %s", err, a.path)
	}
	// The refused replica left no marker behind.
	if live, _ := Live(ctx, d); len(live) != 1 {
		t.Errorf("%d live markers after the refusal, want 1", len(live))
	}
}

// A marker not rewritten for StaleAfter (a crashed replica) no longer
// counts, and is removed.
func TestStaleMarkerIgnored(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	defer func(s time.Duration) { StaleAfter = s }(StaleAfter)
	StaleAfter = 50 * time.Millisecond
	if err := d.PutContent(ctx, Dir+"/crashed", []byte(`{"secret":"old"}`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(120 * time.Millisecond)
	p, err := Announce(ctx, d, "new", false)
	if err != nil {
		t.Fatalf("a stale marker with another secret blocked the start: %v", err)
	}
	defer p.Close(ctx)
	if _, err := d.Stat(ctx, Dir+"/crashed"); err == nil {
		t.Errorf("stale marker not removed")
	}
}
