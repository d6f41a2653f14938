package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/relay"
)

// TestMetricsEndpoint scrapes a real relay's -metrics-listen endpoint over HTTP.
func TestMetricsEndpoint(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	srv, err := relay.New(ctx, relay.Config{
		Secret: []byte("test-secret-0123456789abcdef0123"), PublicIP: netip.MustParseAddr("127.0.0.1"),
		UDPListen: []string{"127.0.0.1:0"}, Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err, "relay.New")
	defer func() { assert.NoError(t, srv.Close(), "relay Close") }()

	_, err = startMetrics("127.0.0.1:-1", srv)
	require.Error(t, err, "a bad address fails at start")

	m, err := startMetrics("127.0.0.1:0", srv)
	require.NoError(t, err, "startMetrics")
	url := "http://" + m.Addr().String() + "/metrics"
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err, "GET /metrics")
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	for _, want := range []string{"nexodus_relay_allocations 0", "nexodus_relay_relayed_bytes_total 0", "go_goroutines"} {
		assert.Contains(t, string(body), want)
	}

	require.NoError(t, m.Close(ctx), "Close")
	select {
	case <-m.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	http.DefaultClient.CloseIdleConnections()
	_, err = http.DefaultClient.Do(req.Clone(ctx))
	require.Error(t, err, "a scrape after Close")
}
