package server

// This file sets up the registry's log: its level and format, from the
// options or else the configuration file, with the 404s of clients'
// existence checks (a blob or manifest HEAD before a push, a tag probed
// before a pull) moved from error down to debug, where they belong, and
// distribution's warning on every read by a sha512 digest dropped.

import (
	"fmt"
	"net/http"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/sirupsen/logrus"

	"github.com/ferry-dev/ferry/internal/redact"
	"github.com/ferry-dev/ferry/internal/regstorage"
)

// Log formats WithLogFormat takes.
const (
	LogText = "text"
	LogJSON = "json"
)

// WithLogFormat sets the log's format: LogText (logrus' text,
// key=value) or LogJSON (one JSON object a line). Unless set, the
// configuration file's log.formatter counts, else LogText.
func WithLogFormat(format string) Option {
	return func(o *options) error {
		if format != "" && format != LogText && format != LogJSON {
			return fmt.Errorf("server: log format %q: want %s or %s", format, LogText, LogJSON)
		}
		o.logFormat = format
		return nil
	}
}

// applyLog sends distribution's log where the options say, at their
// level and in their format, or the configuration file's.
func (o *options) applyLog(cfg *configuration.Configuration) error {
	level := o.logLevel
	if level == "" {
		level = string(cfg.Log.Level)
	}
	if level == "" {
		level = "error"
	}
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return fmt.Errorf("server: log level: %w", err)
	}
	format := o.logFormat
	if format == "" {
		format = cfg.Log.Formatter
	}
	var f logrus.Formatter
	switch format {
	case "", LogText:
		f = &logrus.TextFormatter{}
	case LogJSON:
		f = &logrus.JSONFormatter{}
	default:
		return fmt.Errorf("server: log.formatter %q: want %s or %s", format, LogText, LogJSON)
	}
	regstorage.SetLog(o.logOut, lvl)
	// Nor is a read by a sha512 digest worth a warning (regstorage's).
	regstorage.SetFormatter(regstorage.WithoutAliasLookups(hideSecrets{demoteNotFound{f}}))
	return nil
}

// hideSecrets formats an entry as its Formatter does, with the
// credentials of signed URLs hidden (redact.Secrets): the mirror and
// distribution log failed requests with Go's errors, which quote the URL
// whole, and an upstream's redirect to its storage, or a foreign layer's
// CDN, may be a presigned URL.
type hideSecrets struct{ logrus.Formatter }

// Format implements logrus.Formatter.
func (f hideSecrets) Format(e *logrus.Entry) ([]byte, error) {
	b, err := f.Formatter.Format(e)
	if err != nil || len(b) == 0 {
		return b, err
	}
	return []byte(redact.Secrets(string(b))), nil
}

// demoteNotFound logs distribution's "response completed with error"
// lines of 404 answers at debug level: a client checking whether a blob
// or manifest exists before pushing it is no error.
type demoteNotFound struct{ logrus.Formatter }

// Format implements logrus.Formatter.
func (f demoteNotFound) Format(e *logrus.Entry) ([]byte, error) {
	if e.Level <= logrus.WarnLevel && e.Data["http.response.status"] == http.StatusNotFound {
		if e.Logger != nil && !e.Logger.IsLevelEnabled(logrus.DebugLevel) {
			return nil, nil
		}
		d := *e
		d.Level = logrus.DebugLevel
		return f.Formatter.Format(&d)
	}
	return f.Formatter.Format(e)
}
