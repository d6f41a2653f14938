package mesh

import (
	"context"
	"fmt"
	"log/slog"

	"golang.zx2c4.com/wireguard/device"
)

// newDeviceLogger adapts wireguard-go's printf-style logger to slog. Both of its levels go to
// Debug: wireguard-go's "errors" are routine events for a mesh (a send to an unreachable
// candidate, a dropped handshake) that the Mesh reports in its own terms where they matter.
func newDeviceLogger(l *slog.Logger) *device.Logger {
	l = l.With("component", "wireguard")
	logf := func(level string) func(string, ...any) {
		return func(format string, args ...any) {
			if !l.Enabled(context.Background(), slog.LevelDebug) {
				return
			}
			l.Debug(fmt.Sprintf(format, args...), "wg_level", level)
		}
	}
	return &device.Logger{Verbosef: logf("verbose"), Errorf: logf("error")}
}
