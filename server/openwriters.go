package server

// This file frees the disk after a push the disk could not hold.
// distribution's blob writer, when closed, first stores its hash state and
// returns that error before closing its file: on a full disk the store
// fails, and the data file of the upload stays open for good, so removing
// the upload frees nothing until the process ends. A storage middleware
// keeps track of the file writers the registry opens and has not closed
// or cancelled, and the guard cancels those of an upload it removes.

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/distribution/distribution/v3/configuration"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	storagemiddleware "github.com/distribution/distribution/v3/registry/storage/driver/middleware"
)

const (
	// writersMiddleware is the storage middleware that tracks open file
	// writers; writersKey its option holding the *openWriters.
	writersMiddleware = "ferry-open-writers"
	writersKey        = "writers"
)

var registerWritersMiddleware = sync.OnceValue(func() error {
	err := storagemiddleware.Register(writersMiddleware, func(_ context.Context, d storagedriver.StorageDriver, opts map[string]any) (storagedriver.StorageDriver, error) {
		w, ok := opts[writersKey].(*openWriters)
		if !ok {
			return nil, fmt.Errorf("server: storage middleware %s is ferry's own and cannot be configured", writersMiddleware)
		}
		return &trackingDriver{StorageDriver: d, open: w}, nil
	})
	if err != nil {
		return fmt.Errorf("server: register storage middleware: %w", err)
	}
	return nil
})

// trackOpenWriters adds the tracking middleware to a filesystem
// configuration and returns its tracker; nil on other drivers, whose
// writers hold no local file.
func trackOpenWriters(cfg *configuration.Configuration) (*openWriters, error) {
	if cfg.Storage.Type() != "filesystem" {
		return nil, nil
	}
	if err := registerWritersMiddleware(); err != nil {
		return nil, err
	}
	w := &openWriters{files: map[*trackedWriter]bool{}}
	addMiddleware(cfg, "storage", writersMiddleware, configuration.Parameters{writersKey: w})
	return w, nil
}

// openWriters is the set of file writers opened and not yet closed or
// cancelled.
type openWriters struct {
	mu    sync.Mutex
	files map[*trackedWriter]bool
}

func (o *openWriters) set(w *trackedWriter, open bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if open {
		o.files[w] = true
	} else {
		delete(o.files, w)
	}
}

// cancelUnder cancels the writers still open on files under dir (a
// driver path), closing their files.
func (o *openWriters) cancelUnder(ctx context.Context, dir string) {
	if o == nil {
		return
	}
	o.mu.Lock()
	var left []*trackedWriter
	for w := range o.files {
		if strings.HasPrefix(w.path, dir+"/") {
			left = append(left, w)
			delete(o.files, w)
		}
	}
	o.mu.Unlock()
	for _, w := range left {
		_ = w.FileWriter.Cancel(ctx)
	}
}

type trackingDriver struct {
	storagedriver.StorageDriver
	open *openWriters
}

// Writer implements storagedriver.StorageDriver.
func (d *trackingDriver) Writer(ctx context.Context, p string, append bool) (storagedriver.FileWriter, error) {
	fw, err := d.StorageDriver.Writer(ctx, p, append)
	if err != nil {
		return nil, err
	}
	w := &trackedWriter{FileWriter: fw, path: p, open: d.open}
	d.open.set(w, true)
	return w, nil
}

type trackedWriter struct {
	storagedriver.FileWriter
	path string
	open *openWriters
}

// Close implements storagedriver.FileWriter.
func (w *trackedWriter) Close() error {
	w.open.set(w, false)
	return w.FileWriter.Close()
}

// Cancel implements storagedriver.FileWriter.
func (w *trackedWriter) Cancel(ctx context.Context) error {
	w.open.set(w, false)
	return w.FileWriter.Cancel(ctx)
}
