package main

// The relay's Prometheus endpoint (-metrics-listen): the relay's counters, with the Go runtime
// and process collectors, at /metrics on a listener of its own, so that scraping stays off the
// STUN/TURN ports and can be firewalled apart from them.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nexodus-sdk/nexodus/relay"
)

// metricsServer serves /metrics until Close.
type metricsServer struct {
	ln   net.Listener
	hs   *http.Server
	done chan struct{} // closed when Serve has returned
	err  error         // Serve's error, set before done is closed
}

// startMetrics listens on addr at once, so that a taken port fails the start rather than
// a later scrape, and serves the relay's collector there.
func startMetrics(addr string, srv *relay.Server) (*metricsServer, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		srv.Collector(),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-metrics-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	m := &metricsServer{ln: ln, done: make(chan struct{}), hs: &http.Server{
		Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
	}}
	go func() {
		defer close(m.done)
		m.err = m.hs.Serve(ln)
	}()
	return m, nil
}

// Addr is where the endpoint listens.
func (m *metricsServer) Addr() net.Addr { return m.ln.Addr() }

// Done is closed when serving stops: after Close, or before it when the listener fails.
func (m *metricsServer) Done() <-chan struct{} { return m.done }

// Close stops serving, letting a scrape in progress finish within ctx, and reports why
// serving stopped if it was not Close.
func (m *metricsServer) Close(ctx context.Context) error {
	err := m.hs.Shutdown(ctx)
	<-m.done
	if err == nil && !errors.Is(m.err, http.ErrServerClosed) {
		err = m.err
	}
	if err != nil {
		return fmt.Errorf("metrics endpoint: %w", err)
	}
	return nil
}
