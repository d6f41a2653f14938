// Package nexodusprom exports a [nexodus.Node]'s state as Prometheus metrics. It lives apart
// from package nexodus so that programs embedding a Node do not pull in client_golang unless
// they want it:
//
//	prometheus.MustRegister(nexodusprom.NewCollector(node))
//
// Every scrape reads [nexodus.Node.Status] once. Peers are labeled by hostname, so the number
// of series grows with the organization's size.
package nexodusprom

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexodus-sdk/nexodus"
)

// Collector is a prometheus.Collector over one Node.
type Collector struct {
	node *nexodus.Node

	up, controlConnected, peers                       *prometheus.Desc
	rxBytes, txBytes, handshakeAge, pathChanges, path *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector of n's metrics. Metrics carry the node's hostname (as
// Status reports it) in the label "node", so several Nodes of one process can share a
// registry.
func NewCollector(n *nexodus.Node) *Collector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("nexodus_node_"+name, help, append([]string{"node"}, labels...), nil)
	}
	return &Collector{
		node:             n,
		up:               desc("up", "1 while the node runs; 0 once the coordinator cut it off or it was closed."),
		controlConnected: desc("control_connected", "1 while the node's event stream to the coordinator is connected."),
		peers:            desc("peers", "Peers the node knows of."),
		rxBytes:          desc("peer_receive_bytes_total", "WireGuard bytes received from the peer.", "peer"),
		txBytes:          desc("peer_transmit_bytes_total", "WireGuard bytes sent to the peer.", "peer"),
		handshakeAge:     desc("peer_handshake_age_seconds", "Seconds since the last WireGuard handshake with the peer (absent before the first).", "peer"),
		pathChanges:      desc("peer_path_changes_total", "Paths to the peer found, lost or switched since the node started.", "peer"),
		path:             desc("peer_path", "1 for the peer's current path: none, direct or relayed.", "peer", "path"),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.controlConnected, c.peers, c.rxBytes, c.txBytes, c.handshakeAge, c.pathChanges, c.path} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.node.Status()
	now := time.Now()
	send := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		m, err := prometheus.NewConstMetric(d, t, v, append([]string{st.Hostname}, labels...)...)
		if err != nil {
			m = prometheus.NewInvalidMetric(d, err) // the registry reports it; nothing panics
		}
		ch <- m
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) { send(d, prometheus.GaugeValue, v, labels...) }
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		send(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.up, boolValue(st.Stopped == "" && c.node.Err() == nil))
	gauge(c.controlConnected, boolValue(st.ControlConnected))
	gauge(c.peers, float64(len(st.Peers)))
	for _, p := range st.Peers {
		counter(c.rxBytes, p.RxBytes, p.Hostname)
		counter(c.txBytes, p.TxBytes, p.Hostname)
		counter(c.pathChanges, p.PathChanges, p.Hostname)
		if !p.LastHandshake.IsZero() {
			gauge(c.handshakeAge, now.Sub(p.LastHandshake).Seconds(), p.Hostname)
		}
		for _, path := range []nexodus.PathType{nexodus.PathNone, nexodus.PathDirect, nexodus.PathRelayed} {
			gauge(c.path, boolValue(p.Path == path), p.Hostname, string(path))
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
