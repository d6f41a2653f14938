package natt

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
)

// pion's routine warnings stay out of an application's Info log; its errors reach Warn.
func TestPionLogLevels(t *testing.T) {
	var buf bytes.Buffer
	l := pionLoggerFactory{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}.NewLogger("ice")
	l.Info("gathering")
	l.Warnf("failed to refresh %s", "binding")
	assert.Empty(t, buf.String(), "info and warnings are debug")
	l.Error("allocation refused: 401")
	assert.Contains(t, buf.String(), "level=WARN")
	assert.Contains(t, buf.String(), "allocation refused")
}
