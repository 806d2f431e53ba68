// Package regstorage holds what ferry's two users of distribution's
// registry storage — the embedded registry (server) and the offline store
// on a storage root (store/regroot) — share about that storage: where a
// root keeps its data, the error for a directory that is no root, and the
// one setting of distribution's log. Its subpackages are the rest of that
// toolkit:
//
//	fsdriver/        distribution's filesystem driver, made to work on Windows
//	rootlock/        the OS lock that keeps ferry serve and storage gc apart
//	storedmanifest/  reading manifests as distribution stored them
//	urlrules/        the allow/deny rules for foreign-layer URLs
//	aliaslinks/      the links naming content by a digest other than sha256
//	replicas/        serve replicas on one shared driver seeing each other
//	s3driver/        ferry's S3 storage driver, on aws-sdk-go-v2
//	uploads/         unfinished uploads: listed by fsck, removed by gc and serve
package regstorage

import (
	"errors"
	"io"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

// DataDir is where a storage root keeps its data, relative to the root
// (in a storage driver's namespace, "/" + DataDir).
const DataDir = "docker/registry/v2"

// ErrNotRoot means a directory exists but is not a registry storage root
// (it has no DataDir), matched with errors.Is.
var ErrNotRoot = errors.New("not a registry storage root")

// logMu orders the changes to logrus' global logger, through which
// distribution logs.
var logMu sync.Mutex

// SetLog sends distribution's log to w at level.
func SetLog(w io.Writer, level logrus.Level) {
	logMu.Lock()
	defer logMu.Unlock()
	logrus.SetLevel(level)
	logrus.SetOutput(w)
}

// QuietLog keeps distribution's log at warnings and errors when it is set
// to say more: its info-level storage log (one line per blob deleted or
// linked) has no place on a terminal. Nor has the warning distribution
// gives on every read of content by a sha512 digest, which is how such
// content is stored (internal/regstorage/aliaslinks), not a fault: it is
// dropped. Its output is left as it is.
func QuietLog() {
	logMu.Lock()
	defer logMu.Unlock()
	if logrus.GetLevel() > logrus.WarnLevel {
		logrus.SetLevel(logrus.WarnLevel)
	}
	if f := logrus.StandardLogger().Formatter; f != nil {
		logrus.SetFormatter(WithoutAliasLookups(f))
	}
}

// aliasLookup starts distribution's warning on reading content by an alias
// link (registry/storage/linkedblobstore.go).
const aliasLookup = "looking up blob with canonical target"

// WithoutAliasLookups returns f dropping distribution's warning on every
// read of content by a sha512 digest (QuietLog's; the registry's log
// drops it too): f itself when it drops it already.
func WithoutAliasLookups(f logrus.Formatter) logrus.Formatter {
	if _, ok := f.(withoutAliasLookups); ok {
		return f
	}
	return withoutAliasLookups{f}
}

// withoutAliasLookups formats every entry but aliasLookup's as its
// Formatter does, and that one as nothing.
type withoutAliasLookups struct{ logrus.Formatter }

// Format implements logrus.Formatter.
func (f withoutAliasLookups) Format(e *logrus.Entry) ([]byte, error) {
	if strings.HasPrefix(e.Message, aliasLookup) {
		return nil, nil
	}
	return f.Formatter.Format(e)
}

// SetFormatter sets the formatter of distribution's log.
func SetFormatter(f logrus.Formatter) {
	logMu.Lock()
	defer logMu.Unlock()
	logrus.SetFormatter(f)
}
