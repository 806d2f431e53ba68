package cli

import (
	"github.com/ferry-dev/ferry/location"
	"github.com/ferry-dev/ferry/opener"
)

// parseLocation parses a location argument; failures are usage errors.
func (g *globals) parseLocation(s string) (location.Location, error) {
	loc, err := g.network().Parse(s)
	if err != nil {
		return location.Location{}, usageErr(err)
	}
	return loc, nil
}

// The global flags that tune retries, which copyFlags reads back from the
// command.
const (
	// stallFlag bounds how long a request may go without moving a byte.
	stallFlag = "stall-timeout"
	// retryDelayFlag replaces the backoff between retries by a fixed wait.
	retryDelayFlag = "retry-delay"
)

// network is what the global flags say about talking to registries and
// foreign URLs.
func (g *globals) network() opener.Network {
	return opener.Network{Insecure: g.insecure, StallTimeout: g.stall, RetryDelay: g.delay}
}
