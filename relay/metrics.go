package relay

// A Prometheus collector over Stats, so that a program serving a relay can expose its
// counters on its own registry (nothing is registered globally).

import "github.com/prometheus/client_golang/prometheus"

// statsCollector reads Stats at each scrape.
type statsCollector struct {
	s     *Server
	descs []statDesc
}

type statDesc struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(Stats) int64
}

// Collector returns a prometheus.Collector of the relay's Stats: allocations (live and
// total), bytes and packets relayed, packets dropped, authentication failures and
// throttling, quota rejections and refused peers. Register it on the program's registry.
func (s *Server) Collector() prometheus.Collector {
	d := func(name, help string, kind prometheus.ValueType, v func(Stats) int64) statDesc {
		return statDesc{prometheus.NewDesc("nexodus_relay_"+name, help, nil, nil), kind, v}
	}
	c, g := prometheus.CounterValue, prometheus.GaugeValue
	return &statsCollector{s: s, descs: []statDesc{
		d("allocations", "Live TURN allocations.", g, func(st Stats) int64 { return st.Allocations }),
		d("allocations_total", "TURN allocations ever made.", c, func(st Stats) int64 { return st.AllocationsTotal }),
		d("relayed_bytes_total", "Payload bytes relayed to and from peers.", c, func(st Stats) int64 { return st.BytesRelayed }),
		d("relayed_packets_total", "Datagrams relayed to and from peers.", c, func(st Stats) int64 { return st.PacketsRelayed }),
		d("dropped_packets_total", "Datagrams dropped over the bandwidth limit.", c, func(st Stats) int64 { return st.PacketsDropped }),
		d("auth_failures_total", "Requests refused for their credentials.", c, func(st Stats) int64 { return st.AuthFailures }),
		d("auth_throttled_total", "Requests refused for their source's failed authentications.", c, func(st Stats) int64 { return st.AuthThrottled }),
		d("quota_rejections_total", "Allocations refused for the per-user quota.", c, func(st Stats) int64 { return st.QuotaRejections }),
		d("peers_refused_total", "Permissions refused for a denied peer address.", c, func(st Stats) int64 { return st.PeersRefused }),
	}}
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d.desc
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	for _, d := range c.descs {
		ch <- prometheus.MustNewConstMetric(d.desc, d.kind, float64(d.value(st)))
	}
}
