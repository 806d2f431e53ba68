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

// TestQuietLogDropsAliasLookups: distribution's warning on every read by a
// sha512 digest goes, other warnings stay.
func TestQuietLogDropsAliasLookups(t *testing.T) {
	defer SetLog(logrus.StandardLogger().Out, logrus.GetLevel())
	var buf bytes.Buffer
	SetLog(&buf, logrus.InfoLevel)
	QuietLog()
	QuietLog() // once wrapped is enough
	logrus.Warnf("looking up blob with canonical target: sha512:aa -> sha256:bb")
	if buf.Len() != 0 {
		t.Errorf("the alias lookup warning was written: %q", buf.String())
	}
	logrus.Warn("something else")
	if !bytes.Contains(buf.Bytes(), []byte("something else")) || bytes.Count(buf.Bytes(), []byte("\n")) != 1 {
		t.Errorf("other warnings: %q, want the one line", buf.String())
	}
}
