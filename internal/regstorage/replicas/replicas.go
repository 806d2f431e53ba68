// Package replicas lets `ferry serve` processes that share one storage
// driver (an S3 bucket behind a load balancer) see each other through that
// storage, with nothing beside it: no cluster membership service, no local
// state.
//
// Each running replica keeps a marker object, refreshed every Refresh:
//
//	/ferry/replicas/<random id>   {"secret": <fingerprint>, "readOnly": …, "host": …, "pid": …, "started": …}
//
// Two checks are built on the markers.
//
//   - Announce, at a replica's start, writes its marker, reads it back (so a
//     store that does not return what was written is caught before it takes
//     traffic) and refuses to start when a live marker carries another
//     http.secret fingerprint. distribution signs upload state with
//     http.secret: an upload begun on one replica and continued on another
//     fails unless both hold the same secret.
//   - Live, for `ferry storage gc`, lists the replicas currently running and
//     whether they accept writes.
//
// A marker is live while the store's own clock says it was written less
// than StaleAfter ago: its modification time is compared with that of an
// object written just before, never with the local clock, so clock skew
// between hosts does not matter. A replica that stops cleanly deletes its
// marker; one that crashed stops counting after StaleAfter, which is also
// how a changed secret takes over after every replica was stopped.
//
// Why a marker per replica rather than one per secret
// (ferry/secret-check/<sha256(secret)>): a marker per secret cannot tell a
// running replica from one stopped last week, so rotating the secret would
// need a manual clean-up, and it says nothing to gc about who is running.
// The fingerprint is an HMAC of a fixed label keyed with the secret, so the
// bucket holds no plain hash of it.
package replicas

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"sync"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// Dir is where the markers live in the storage driver's namespace, beside
// distribution's /docker/registry/v2.
const Dir = "/ferry/replicas"

// clockDir holds the short-lived objects Live writes to read the store's
// clock.
const clockDir = "/ferry/clock"

var (
	// Refresh is how often a replica rewrites its marker.
	Refresh = 10 * time.Second
	// StaleAfter is how old, by the store's clock, a marker may be and
	// still count as a running replica.
	StaleAfter = 60 * time.Second
)

// ErrSecretMismatch means a live replica on the same storage uses another
// http.secret.
var ErrSecretMismatch = errors.New("http.secret differs from a running replica's")

// Marker is what a replica writes about itself.
type Marker struct {
	// ID names the marker: /ferry/replicas/<ID>.
	ID string `json:"id"`
	// Secret is the fingerprint of the replica's http.secret (Fingerprint).
	Secret string `json:"secret"`
	// ReadOnly says the replica runs in distribution's read-only mode
	// (storage.maintenance.readonly.enabled) and accepts no writes.
	ReadOnly bool `json:"readOnly"`
	// Host and PID identify the process for messages.
	Host string `json:"host"`
	PID  int    `json:"pid"`
	// Started is when the replica started, by its own clock.
	Started time.Time `json:"started"`
	// Age is how long ago, by the store's clock, the marker was last
	// written. Set by Live and in errors; not stored.
	Age time.Duration `json:"-"`
}

// String describes the replica for messages.
func (m Marker) String() string {
	return fmt.Sprintf("replica %s on %s (pid %d), marker %s/%s written %s ago", m.ID, m.Host, m.PID, Dir, m.ID, m.Age.Round(time.Second))
}

// Fingerprint returns the marker form of an http.secret: HMAC-SHA256 of a
// fixed label keyed with the secret, 128 bits in hex. Equal secrets give
// equal fingerprints; the fingerprint is no plain hash of the secret.
func Fingerprint(secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("ferry http.secret check v1"))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// Presence is a running replica's marker, refreshed until Close.
type Presence struct {
	d      storagedriver.StorageDriver
	path   string
	body   []byte
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
	closed error
}

// Announce writes this replica's marker (secret fingerprint and read-only
// mode), reads it back, and checks the live markers of other replicas: when
// one carries another secret fingerprint, it removes its own marker and
// returns an error wrapping ErrSecretMismatch naming that replica. On
// success the marker is refreshed every Refresh until Close or until ctx
// is done.
func Announce(ctx context.Context, d storagedriver.StorageDriver, secret string, readOnly bool) (*Presence, error) {
	id, err := randomID()
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	m := Marker{ID: id, Secret: Fingerprint(secret), ReadOnly: readOnly, Host: host, PID: os.Getpid(), Started: time.Now().UTC()}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("replica marker: %w", err)
	}
	p := &Presence{d: d, path: path.Join(Dir, id), body: body, stop: make(chan struct{}), done: make(chan struct{})}
	if err := d.PutContent(ctx, p.path, body); err != nil {
		return nil, fmt.Errorf("replica marker: write %s through the storage driver: %w", p.path, err)
	}
	got, err := d.GetContent(ctx, p.path)
	if err != nil {
		p.remove(ctx)
		return nil, fmt.Errorf("replica marker: read back %s: %w", p.path, err)
	}
	if !bytes.Equal(got, body) {
		p.remove(ctx)
		return nil, fmt.Errorf("replica marker: %s read back %d bytes that differ from the %d written: the storage does not return what was written", p.path, len(got), len(body))
	}
	others, err := live(ctx, d, p.path)
	if err != nil {
		p.remove(ctx)
		return nil, err
	}
	for _, o := range others {
		if o.ID != id && o.Secret != m.Secret {
			p.remove(ctx)
			return nil, fmt.Errorf("%w: %s. An upload begun on one replica would fail on the other; give every replica the same http.secret (FERRY_HTTP_SECRET or http.secret in --config), or stop that replica (a crashed replica's marker stops counting %s after its last write)",
				ErrSecretMismatch, o, StaleAfter)
		}
	}
	go p.refresh(ctx)
	return p, nil
}

func randomID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("replica marker: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// refresh rewrites the marker every Refresh; a failed write is tried
// again at the next tick.
func (p *Presence) refresh(ctx context.Context) {
	defer close(p.done)
	t := time.NewTicker(Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.stop:
			return
		case <-t.C:
			_ = p.d.PutContent(ctx, p.path, p.body)
		}
	}
}

// remove deletes the marker, ignoring errors: a marker left behind stops
// counting after StaleAfter.
func (p *Presence) remove(ctx context.Context) {
	_ = p.d.Delete(context.WithoutCancel(ctx), p.path)
}

// Close stops refreshing and deletes the marker, so that the replica no
// longer counts as running.
func (p *Presence) Close(ctx context.Context) error {
	if p == nil {
		return nil
	}
	p.once.Do(func() {
		close(p.stop)
		<-p.done
		var pnf storagedriver.PathNotFoundError
		if err := p.d.Delete(context.WithoutCancel(ctx), p.path); err != nil && !errors.As(err, &pnf) {
			p.closed = fmt.Errorf("replica marker: delete %s: %w", p.path, err)
		}
	})
	return p.closed
}

// Live returns the markers of the replicas running on d, oldest write
// first. Markers found stale are deleted.
func Live(ctx context.Context, d storagedriver.StorageDriver) ([]Marker, error) {
	id, err := randomID()
	if err != nil {
		return nil, err
	}
	probe := path.Join(clockDir, id)
	if err := d.PutContent(ctx, probe, []byte("clock\n")); err != nil {
		return nil, fmt.Errorf("replica markers: write %s through the storage driver: %w", probe, err)
	}
	defer func() { _ = d.Delete(context.WithoutCancel(ctx), probe) }()
	return live(ctx, d, probe)
}

// live lists the markers under Dir whose modification time is less than
// StaleAfter before that of the object at now (just written), and deletes
// the stale ones.
func live(ctx context.Context, d storagedriver.StorageDriver, now string) ([]Marker, error) {
	fi, err := d.Stat(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("replica markers: stat %s: %w", now, err)
	}
	storeNow := fi.ModTime()
	paths, err := d.List(ctx, Dir)
	var pnf storagedriver.PathNotFoundError
	if errors.As(err, &pnf) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("replica markers: list %s: %w", Dir, err)
	}
	var out []Marker
	for _, p := range paths {
		if p == now {
			continue
		}
		fi, err := d.Stat(ctx, p)
		if errors.As(err, &pnf) {
			continue // a replica stopped meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("replica markers: stat %s: %w", p, err)
		}
		age := storeNow.Sub(fi.ModTime())
		if age > StaleAfter {
			_ = d.Delete(ctx, p)
			continue
		}
		b, err := d.GetContent(ctx, p)
		if errors.As(err, &pnf) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("replica markers: read %s: %w", p, err)
		}
		var m Marker
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("replica markers: %s is not a ferry replica marker: %w", p, err)
		}
		m.ID, m.Age = path.Base(p), max(age, 0)
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Age > out[j].Age })
	return out, nil
}
