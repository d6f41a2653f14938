package coordinator

// Prometheus metrics: what the coordinator counts (requests, event streams, fan-out, store
// transactions, devices online) on a registry of its own — several coordinators in one process
// share nothing — and GET /metrics, behind Config.MetricsToken when it is set.

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are one Server's collectors.
type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec   // route, code
	latency     *prometheus.HistogramVec // route
	streams     prometheus.Gauge
	eventsSent  prometheus.Counter
	fanout      prometheus.Histogram
	storeTxTime *prometheus.HistogramVec // kind (tx, view), result (ok, error)
}

// newMetrics registers the coordinator's collectors; online reports the devices with a stream
// on this replica.
func newMetrics(online func() int) *metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) } // names are ours and distinct
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexodus_coordinator_http_requests_total",
			Help: "HTTP requests answered, by route pattern and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nexodus_coordinator_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests other than event streams, by route pattern.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms .. 16 s
		}, []string{"route"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nexodus_coordinator_event_streams_open",
			Help: "Event streams open on this replica.",
		}),
		eventsSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nexodus_coordinator_events_sent_total",
			Help: "Logged events (and syncs) written to event streams: the fan-out.",
		}),
		fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nexodus_coordinator_event_fanout_seconds",
			Help:    "From an event's append to its write on a stream (across replicas, clocks permitting).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		storeTxTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nexodus_coordinator_store_transaction_duration_seconds",
			Help:    "Store transactions, retries included: kind tx (read-write) or view (read-only), result ok or error.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18), // 0.1 ms .. 13 s
		}, []string{"kind", "result"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.streams, m.eventsSent, m.fanout, m.storeTxTime,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nexodus_coordinator_devices_online",
			Help: "Devices with an event stream open on this replica.",
		}, func() float64 { return float64(online()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		f(c)
	}
	return m
}

// observeRequest counts an answered request. Event streams are counted but not timed: their
// duration is the client's connection, not the coordinator's work.
func (m *metrics) observeRequest(pattern string, code int, took time.Duration) {
	route := pattern
	if route == "" {
		route = "unmatched" // a bounded label: never the raw path
	}
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	if !strings.HasSuffix(route, "/events") {
		m.latency.WithLabelValues(route).Observe(took.Seconds())
	}
}

// eventSent counts an event written to a stream; logged is its append time (zero for a sync,
// which is no one change's fan-out).
func (m *metrics) eventSent(logged time.Time) {
	m.eventsSent.Inc()
	if !logged.IsZero() {
		m.fanout.Observe(max(time.Since(logged), 0).Seconds())
	}
}

// metricsHandler serves the registry; with a token configured, only to its bearer.
func (s *Server) metricsHandler() http.Handler {
	h := promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
	if s.metricsHash == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(tok))
		if !ok || subtle.ConstantTimeCompare(sum[:], s.metricsHash) != 1 {
			// A wrong token costs its source, as a failed sign-in does: no guessing at speed.
			err := s.limitUnauthenticated(r)
			if err == nil {
				err = errorf(ErrUnauthorized, "the metrics need the metrics token")
			}
			s.writeError(w, r, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}
