package regstorage

import (
	"bytes"
	"testing"

	"github.com/sirupsen/logrus"
)

// TestQuietLog: QuietLog lowers a chattier level to warnings and leaves a
// quieter one and SetLog's output alone.
func TestQuietLog(t *testing.T) {
	defer SetLog(logrus.StandardLogger().Out, logrus.GetLevel())
	var buf bytes.Buffer
	for _, c := range []struct{ set, want logrus.Level }{
		{logrus.DebugLevel, logrus.WarnLevel},
		{logrus.InfoLevel, logrus.WarnLevel},
		{logrus.WarnLevel, logrus.WarnLevel},
		{logrus.ErrorLevel, logrus.ErrorLevel},
	} {
		SetLog(&buf, c.set)
		QuietLog()
		if got := logrus.GetLevel(); got != c.want {
			t.Errorf("QuietLog after %v: %v, want %v", c.set, got, c.want)
		}
		if logrus.StandardLogger().Out != &buf {
			t.Errorf("QuietLog after %v changed the output", c.set)
		}
	}
}
