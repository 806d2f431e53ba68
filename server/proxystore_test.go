package server

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestMirrorSettledWaitsForEarlierStoreOfKey: two background stores of
// one key (two clients fetched the same manifest) are both waited for,
// not only the later, which replaced the earlier in pending.
func TestMirrorSettledWaitsForEarlierStoreOfKey(t *testing.T) {
	m := &mirror{background: &sync.WaitGroup{}}
	ctx := context.Background()
	unblock := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(unblock) }) }
	defer m.background.Wait()
	defer release()
	m.storeLater(ctx, "k", "first", func(context.Context) error { <-unblock; return nil })
	m.storeLater(ctx, "k", "second", func(context.Context) error { return nil })
	time.Sleep(20 * time.Millisecond) // the second store ends
	settled := make(chan struct{})
	go func() { m.settled(ctx); close(settled) }()
	select {
	case <-settled:
		t.Fatal("settled returned while the first store of the key was under way")
	case <-time.After(100 * time.Millisecond):
	}
	if m.waitStored(ctxDone(), "k") {
		t.Error("waitStored reported the key stored while its first store was under way")
	}
	release()
	select {
	case <-settled:
	case <-time.After(5 * time.Second):
		t.Fatal("settled did not return once the stores ended")
	}
}

// ctxDone is a context already ended.
func ctxDone() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
