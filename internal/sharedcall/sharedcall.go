// Package sharedcall lets concurrent callers share one call per key
// (golang.org/x/sync/singleflight) while each waits under its own
// context.
//
// singleflight runs the call with whatever context its first caller
// captured; when that caller's context ends the call fails with
// context.Canceled for everyone sharing it. Do makes a caller whose own
// context goes on call again instead of taking that failure: the
// mirror's upstream client builds and the registry ping cache both need
// it.
package sharedcall

import (
	"context"
	"errors"

	"golang.org/x/sync/singleflight"
)

// Do runs fn once for the concurrent callers of key in g and returns its
// result. A caller stops waiting when ctx ends; one that shared a call
// cancelled with another caller's context calls again.
func Do[T any](ctx context.Context, g *singleflight.Group, key string, fn func() (T, error)) (T, error) {
	var zero T
	for {
		ch := g.DoChan(key, func() (any, error) { return fn() })
		select {
		case res := <-ch:
			if res.Err != nil && res.Shared && ctx.Err() == nil && canceled(res.Err) {
				continue
			}
			if res.Err != nil {
				return zero, res.Err
			}
			return res.Val.(T), nil
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
}

// canceled reports whether err is a context's cancellation or deadline.
func canceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
