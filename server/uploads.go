package server

// This file purges abandoned uploads while the registry serves: what a
// killed push or a client that gave up leaves under _uploads would
// otherwise fill the disk for good.
//
// distribution has an upload purger, but it starts after a random delay of
// up to an hour, and although the app's context ends it, nothing in
// distribution's API waits for a purge under way: it could delete files
// after Close released the storage root's lock, under a `ferry storage gc`
// that took it. So distribution's is always off and ferry runs its own
// (internal/regstorage/uploads), at once and then every interval, until
// the server closes, which waits for it. A configuration file's
// storage.maintenance.uploadpurging says how it runs (enabled, age,
// interval, dryrun), with distribution's defaults.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/sirupsen/logrus"

	"github.com/ferry-dev/ferry/internal/regstorage/uploads"
)

const (
	// DefaultUploadAge is how old an unfinished upload must be to be
	// purged: a day. The age counts from the upload's start, which the
	// replica that began it recorded in the storage, so it is the same
	// for replicas sharing http.secret (on which an upload begun on one
	// continues on another) as long as their clocks agree within
	// minutes; a day is far more than the longest push (100 GB at
	// 1.2 MB/s), and far less than distribution's week.
	DefaultUploadAge = 24 * time.Hour
	// purgeEvery is how often local storage is purged; purgeEveryShared
	// how often shared storage is, where each replica walks the whole
	// bucket's repository tree.
	purgeEvery       = time.Hour
	purgeEveryShared = 24 * time.Hour
)

// WithUploadPurging removes the unfinished uploads older than age, when
// the server starts and then every interval. Unless set, age is
// DefaultUploadAge and interval an hour (a day on shared storage). It
// applies unless a configuration file is given, whose
// storage.maintenance.uploadpurging counts.
func WithUploadPurging(age, interval time.Duration) Option {
	return func(o *options) error {
		if age < 0 || interval <= 0 {
			return errors.New("server: upload purging: age must not be negative and interval must be positive")
		}
		o.purgeAge, o.purgeEvery = age, interval
		return nil
	}
}

// disableDistributionPurger turns off distribution's upload purger in
// cfg, keeping the rest of storage.maintenance: ferry's purger removes
// the uploads.
func disableDistributionPurger(cfg *configuration.Configuration) {
	m := cfg.Storage["maintenance"]
	if m == nil {
		m = configuration.Parameters{}
		cfg.Storage["maintenance"] = m
	}
	m["uploadpurging"] = map[any]any{"enabled": false}
}

// takeOverPurging reads a configuration file's
// storage.maintenance.uploadpurging into o, with distribution's defaults
// (enabled, age 168h, interval 24h, no dry run), for ferry's purger, and
// turns distribution's off.
func (o *options) takeOverPurging(cfg *configuration.Configuration) error {
	o.purgeAge, o.purgeEvery, o.purgeOff, o.purgeDry = 168*time.Hour, 24*time.Hour, false, false
	if v, ok := cfg.Storage["maintenance"]["uploadpurging"]; ok {
		p, ok := v.(map[any]any)
		if !ok {
			return errors.New("server: storage.maintenance.uploadpurging must hold enabled, age, interval and dryrun")
		}
		o.purgeOff = p["enabled"] == false
		// In this order, so that of two bad keys the same is named first.
		for _, f := range []struct {
			key string
			d   *time.Duration
		}{{"age", &o.purgeAge}, {"interval", &o.purgeEvery}} {
			v, given := p[f.key]
			if !given {
				continue
			}
			s, ok := v.(string)
			if !ok {
				return fmt.Errorf("server: storage.maintenance.uploadpurging.%s must be a duration such as 168h", f.key)
			}
			d, err := time.ParseDuration(s)
			if err != nil || d < 0 || (f.key == "interval" && d == 0) {
				return fmt.Errorf("server: storage.maintenance.uploadpurging.%s %q is not a positive duration such as 168h", f.key, s)
			}
			*f.d = d
		}
		if dry, given := p["dryrun"]; given {
			if o.purgeDry, ok = dry.(bool); !ok {
				return errors.New("server: storage.maintenance.uploadpurging.dryrun must be true or false")
			}
		}
	}
	disableDistributionPurger(cfg)
	return nil
}

// purgeStarts, when set (by tests), is called as each purge begins.
var purgeStarts func()

// startPurger runs ferry's upload purger on d until ctx is done, counted
// in running, unless it is off or the storage read-only.
func (o *options) startPurger(ctx context.Context, cfg *configuration.Configuration, d storagedriver.StorageDriver, running *sync.WaitGroup) {
	if o.purgeOff || readOnly(cfg) || d == nil {
		return
	}
	every := o.purgeEvery
	if every == 0 {
		every = purgeEvery
		if sharedStorage(cfg) {
			every = purgeEveryShared
		}
	}
	age, dry := o.purgeAge, o.purgeDry
	msg := "purged abandoned upload"
	if dry {
		msg = "abandoned upload, kept (uploadpurging.dryrun)"
	}
	running.Add(1)
	go func() {
		defer running.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if purgeStarts != nil {
				purgeStarts()
			}
			removed, err := uploads.Remove(ctx, d, time.Now().Add(-age), dry)
			if err != nil && ctx.Err() == nil {
				logrus.WithError(err).Error("purging abandoned uploads")
			}
			for _, u := range removed {
				logrus.WithFields(logrus.Fields{"repository": u.Repository, "upload": u.ID, "size": u.Size, "startedat": u.StartedAt}).Info(msg)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}
