package server

// This file is the shared http.secret: distribution signs upload state
// with it, so replicas on shared storage must all be given the same one.

import (
	"errors"
	"fmt"

	"github.com/distribution/distribution/v3/configuration"
)

// ErrNoSecret means shared storage was configured without http.secret.
var ErrNoSecret = errors.New("http.secret is required with shared storage")

// checkSecret refuses shared storage without http.secret. A pull-through
// cache takes no uploads, and distribution ignores its secret.
func checkSecret(cfg *configuration.Configuration, secretGiven bool) error {
	if !sharedStorage(cfg) || cfg.Proxy.RemoteURL != "" || secretGiven {
		return nil
	}
	return fmt.Errorf("server: %w (%s storage): replicas behind one address must share it, or an upload begun on one fails on another; set FERRY_HTTP_SECRET (or REGISTRY_HTTP_SECRET) in the environment, or http.secret in --config, to the same random string on every replica", ErrNoSecret, cfg.Storage.Type())
}
