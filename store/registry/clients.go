package registry

import (
	"context"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
)

// Clients shares authenticated clients among the Repos opened with it
// (WithClients): one per registry and list of scopes, so that the many
// images of one repository in a run share one connection pool and ask
// for one token, not one each. Every Repo opened with one Clients must be
// opened with the same other options (credentials, transport, network
// settings): they are not part of the key. Safe for concurrent use; the
// zero value is ready to use.
type Clients struct {
	mu sync.Mutex
	m  map[string]*sharedClient
}

// sharedClient is a client being opened (done open) or opened.
type sharedClient struct {
	done chan struct{}
	c    *Client
	err  error
}

// get returns the client for key, opening it with open when there is
// none: callers asking for a key being opened wait for it, and open their
// own when that failed (a failure is not kept).
func (cs *Clients) get(ctx context.Context, key string, open func() (*Client, error)) (*Client, error) {
	cs.mu.Lock()
	if e, ok := cs.m[key]; ok {
		cs.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.err != nil {
			return open()
		}
		return e.c, nil
	}
	if cs.m == nil {
		cs.m = map[string]*sharedClient{}
	}
	e := &sharedClient{done: make(chan struct{})}
	cs.m[key] = e
	cs.mu.Unlock()
	e.c, e.err = open()
	if e.err != nil {
		cs.mu.Lock()
		delete(cs.m, key)
		cs.mu.Unlock()
	}
	close(e.done)
	return e.c, e.err
}

// client returns a client for reg with scopes, shared through o.clients
// when set.
func (o *options) client(ctx context.Context, reg name.Registry, scopes []string) (*Client, error) {
	open := func() (*Client, error) { return newClient(ctx, reg, scopes, o) }
	if o.clients == nil {
		return open()
	}
	return o.clients.get(ctx, reg.Scheme()+"://"+reg.RegistryStr()+" "+strings.Join(scopes, " "), open)
}
