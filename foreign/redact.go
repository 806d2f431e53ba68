package foreign

import (
	"errors"
	"net/url"
	"strings"
)

// parseProblem says what url.Parse's err found wrong with raw without
// quoting raw, as url.Error's message does, password and all. When raw
// holds an "@", the detail (such as a bad %-escape, which may lie in the
// password) is left out too.
func parseProblem(raw string, err error) string {
	var ue *url.Error
	if strings.Contains(raw, "@") || !errors.As(err, &ue) {
		return "it does not parse as a URL"
	}
	return "it does not parse as a URL: " + ue.Err.Error()
}
