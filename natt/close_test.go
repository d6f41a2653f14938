// close_test.go tests the package's one Close rule on every type with a Close: the first call
// succeeds, and every later one returns an error wrapping net.ErrClosed, saying where it comes
// from.

package natt

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/key"
)

func TestCloseRule(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) io.Closer{
		"Socket":     func(t *testing.T) io.Closer { return discardSocket(t) },
		"socketView": func(t *testing.T) io.Closer { return newSockView(discardSocket(t)) },
		"Manager": func(t *testing.T) io.Closer {
			m, err := New(Config{Socket: discardSocket(t), Signal: newLink().signalFrom("a")})
			require.NoError(t, err)
			return m
		},
		"Monitor": func(t *testing.T) io.Closer {
			return NewMonitor(MonitorConfig{
				Socket:  discardSocket(t),
				Servers: func(context.Context) ([]netip.AddrPort, error) { return nil, errors.New("none") },
			})
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := open(t)
			require.NoError(t, c.Close(), "first Close")
			for range 2 {
				err := c.Close()
				require.ErrorIs(t, err, net.ErrClosed, "later Close")
				assert.True(t, strings.HasPrefix(err.Error(), "natt: "), "error %q", err)
			}
			// Concurrent Closes after the first: all refused, none blocks.
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() { assert.ErrorIs(t, c.Close(), net.ErrClosed) })
			}
			wg.Wait()
		})
	}
}

// A Manager refuses to be used once closed.
func TestManagerUseAfterClose(t *testing.T) {
	m, err := New(Config{Socket: discardSocket(t), Signal: newLink().signalFrom("a")})
	require.NoError(t, err)
	require.NoError(t, m.AddPeer("b", key.Key{2}))
	require.NoError(t, m.Close())
	require.ErrorIs(t, m.AddPeer("c", key.Key{3}), net.ErrClosed)
	require.ErrorIs(t, m.HandleSignal("b", encodeSignal(t, SignalMessage{Type: SignalRestart, Session: "5f0c2a9e41d7b3a8"})), net.ErrClosed)
	require.ErrorIs(t, m.Restart("b"), net.ErrClosed)
	assert.Empty(t, m.Paths())
}
