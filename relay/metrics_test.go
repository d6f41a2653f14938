package relay

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The collector's figures move with the relay's traffic and refusals, and two relays' collectors
// live on two registries without clashing.
func TestCollector(t *testing.T) {
	s := startRelay(t)
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(s.Collector()))
	require.NoError(t, prometheus.NewRegistry().Register(startRelay(t).Collector()), "a second relay, its own registry")
	value := func(name string) float64 {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() == name {
				m := mf.GetMetric()[0]
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	assert.Zero(t, value("nexodus_relay_allocations_total"))
	a := deviceClient(t, "udp", s.Addrs().UDP[0].String(), "device-a")
	b := deviceClient(t, "udp", s.Addrs().UDP[1].String(), "device-b")
	exchange(t, a, b)
	assert.EqualValues(t, 2, value("nexodus_relay_allocations"))
	assert.EqualValues(t, 2, value("nexodus_relay_allocations_total"))
	require.Eventually(t, func() bool { return value("nexodus_relay_relayed_packets_total") >= 20 }, 10*time.Second, 5*time.Millisecond)
	assert.Positive(t, value("nexodus_relay_relayed_bytes_total"))
	a.close()
	b.close()

	user, pass := mint("device-a", -time.Minute) // expired
	c := newTurnClient(t, "udp", s.Addrs().UDP[0].String(), user, pass, nil)
	require.Error(t, c.allocate())
	assert.Positive(t, value("nexodus_relay_auth_failures_total"))
	n, err := testutil.GatherAndCount(reg)
	require.NoError(t, err)
	assert.Equal(t, 9, n, "one series per counter")
}
