package nexodusprom_test

import (
	"bufio"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus"
	"github.com/nexodus-sdk/nexodus/nexodusprom"
	"github.com/nexodus-sdk/nexodus/nexodustest"
)

// metric finds the metric of family name whose labels include want.
func metric(t *testing.T, fams []*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			return m
		}
	}
	return nil
}

// The collector reports a node's peers as they are: bytes moved, a path, a handshake.
func TestCollectorReportsPeers(t *testing.T) {
	kit := nexodustest.New(t, nexodustest.WithoutRelay())
	a, b := kit.Pair("a", "b")
	ln, err := b.Listen("tcp", ":7000")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		_, _ = c.Write([]byte(line))
	}()
	c, err := a.Dial(kit.Context(), "tcp", "b:7000")
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("hello\n"))
	require.NoError(t, err)
	_, err = bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	nexodustest.WaitPath(t, a, "b", nexodus.PathDirect)

	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(nexodusprom.NewCollector(a)))
	var fams []*dto.MetricFamily
	require.Eventually(t, func() bool {
		fams, err = reg.Gather()
		require.NoError(t, err)
		rx := metric(t, fams, "nexodus_node_peer_receive_bytes_total", map[string]string{"node": "a", "peer": "b"})
		// NAT traversal's choice of the pair may come a moment after WireGuard's handshake.
		changes := metric(t, fams, "nexodus_node_peer_path_changes_total", map[string]string{"peer": "b"})
		return rx != nil && rx.GetCounter().GetValue() > 0 && changes != nil && changes.GetCounter().GetValue() >= 1
	}, nexodustest.Timeout, 10*time.Millisecond, "bytes from b and the path chosen counted")
	assert.Equal(t, 1.0, metric(t, fams, "nexodus_node_up", nil).GetGauge().GetValue())
	assert.Equal(t, 1.0, metric(t, fams, "nexodus_node_peers", nil).GetGauge().GetValue())
	assert.Equal(t, 1.0, metric(t, fams, "nexodus_node_peer_path", map[string]string{"peer": "b", "path": "direct"}).GetGauge().GetValue())
	assert.Equal(t, 0.0, metric(t, fams, "nexodus_node_peer_path", map[string]string{"peer": "b", "path": "relayed"}).GetGauge().GetValue())
	assert.NotNil(t, metric(t, fams, "nexodus_node_peer_handshake_age_seconds", map[string]string{"peer": "b"}))

	require.NoError(t, a.Close())
	fams, err = reg.Gather()
	require.NoError(t, err)
	assert.Equal(t, 0.0, metric(t, fams, "nexodus_node_up", nil).GetGauge().GetValue(), "a closed node is down")
}
