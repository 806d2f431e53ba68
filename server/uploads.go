package server

// This file purges abandoned uploads while the registry serves: what a
// killed push or a client that gave up leaves under _uploads would
// otherwise fill the disk for good.
//
// distribution has an upload purger, but it starts after a random delay of
// up to an hour and cannot be stopped; on a configuration ferry builds it
// is off and ferry runs its own (internal/regstorage/uploads), at once and
// then every interval, until the server closes. A configuration file's
// storage.maintenance.uploadpurging is the file's: distribution's purger
// runs as it says.

import (
	"context"
	"errors"
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

// disableDistributionPurger turns off distribution's upload purger in a
// configuration ferry builds, whose uploads ferry's purger removes.
func disableDistributionPurger(cfg *configuration.Configuration) {
	cfg.Storage["maintenance"] = configuration.Parameters{
		"uploadpurging": map[any]any{"enabled": false},
	}
}

// startPurger runs ferry's upload purger on d until ctx is done, when the
// configuration is ferry's own (o.configFile is empty) and not read-only.
func (o *options) startPurger(ctx context.Context, cfg *configuration.Configuration, d storagedriver.StorageDriver) {
	if o.configFile != "" || readOnly(cfg) || d == nil {
		return
	}
	every := o.purgeEvery
	if every == 0 {
		every = purgeEvery
		if sharedStorage(cfg) {
			every = purgeEveryShared
		}
	}
	age := o.purgeAge
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			removed, err := uploads.Remove(ctx, d, time.Now().Add(-age), false)
			if err != nil && ctx.Err() == nil {
				logrus.WithError(err).Error("purging abandoned uploads")
			}
			for _, u := range removed {
				logrus.WithFields(logrus.Fields{"repository": u.Repository, "upload": u.ID, "size": u.Size, "startedat": u.StartedAt}).Info("purged abandoned upload")
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}
