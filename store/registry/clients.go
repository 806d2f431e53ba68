package registry

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferry-dev/ferry/internal/pingcache"
)

// Clients shares authenticated clients among the Repos opened with it
// (WithClients): one per registry and list of scopes, so that the many
// images of one repository in a run share one connection pool and ask
// for one token, not one each. Every Repo opened with one Clients must be
// opened with the same other options (credentials, transport, network
// settings): they are not part of the key. The clients also share their
// registries' answers to pings: a client for new scopes (a mount's, from
// another repository) asks no second time within clientPingFresh. Safe
// for concurrent use; the zero value is ready to use.
type Clients struct {
	mu    sync.Mutex
	m     map[string]*sharedClient
	pings *pingcache.Cache
}

// clientPingFresh is how long the clients of one Clients take a
// registry's answer to a ping (200, or 401 with its challenge) as its
// answer again.
const clientPingFresh = time.Minute

// pingCache returns the cache of the registries' answers to pings.
func (cs *Clients) pingCache() *pingcache.Cache {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.pings == nil {
		cs.pings = &pingcache.Cache{TTL: clientPingFresh, Challenges: true}
	}
	return cs.pings
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
