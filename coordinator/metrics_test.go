package coordinator

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
)

// scrape GETs /metrics with the token (none when empty) and returns the status and body.
func (e *env) scrape(token string) (int, string) {
	e.t.Helper()
	resp := e.request(e.t.Context(), "GET", "/metrics", token, nil)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp.StatusCode, string(b)
}

// The metrics move with the work: requests by route and code, open streams, devices online,
// events fanned out and their latency, store transactions. Each Server has its own registry.
func TestMetricsMove(t *testing.T) {
	e := newEnv(t)
	other := newEnv(t) // a second coordinator in the process: nothing shared, nothing clashes
	m := e.coord.metrics
	require.NotSame(t, m.reg, other.coord.metrics.reg)

	alice := e.newUser("alice")
	org := e.newOrg(alice, "metered", "10.6.0.0/24")
	d := e.register(alice.Token, org.ID, "d", newKey(t), 201)
	e.fails(404, "", "GET", "/api/v1/nope", alice.Token, nil)

	assert.EqualValues(t, 1, testutil.ToFloat64(m.requests.WithLabelValues("POST /api/v1/devices", "201")))
	assert.EqualValues(t, 1, testutil.ToFloat64(m.requests.WithLabelValues("unmatched", "404")))
	assert.Positive(t, testutil.CollectAndCount(m.latency), "request latencies")
	assert.Positive(t, testutil.CollectAndCount(m.storeTxTime), "store transaction latencies")

	st := e.openStream(devicePath(d.ID, "/events"), d.Token, "")
	defer st.close()
	require.Equal(t, api.EventSync, st.next().Type)
	assert.EqualValues(t, 1, testutil.ToFloat64(m.streams), "open streams")
	require.Eventually(t, func() bool { return testutil.ToFloat64(m.eventsSent) >= 1 }, 10*time.Second, time.Millisecond, "the sync counts as sent")
	sent := testutil.ToFloat64(m.eventsSent)
	name := "d2"
	e.call("PATCH", devicePath(d.ID, ""), d.Token, api.UpdateDeviceRequest{Hostname: &name}, 200, nil)
	require.Equal(t, api.EventDeviceUpdated, st.next().Type)
	// Counted right after the write, which the client may read first.
	require.Eventually(t, func() bool { return testutil.ToFloat64(m.eventsSent) > sent }, 10*time.Second, time.Millisecond, "the update fanned out")

	code, body := e.scrape("")
	require.Equal(t, http.StatusOK, code)
	for _, want := range []string{
		`nexodus_coordinator_http_requests_total{code="201",route="POST /api/v1/devices"} 1`,
		"nexodus_coordinator_event_streams_open 1",
		"nexodus_coordinator_devices_online 1",
		"nexodus_coordinator_event_fanout_seconds_count 1",
		`nexodus_coordinator_store_transaction_duration_seconds_count{kind="view",result="ok"}`,
		"go_goroutines",
	} {
		assert.Contains(t, body, want)
	}
	st.close()
	require.Eventually(t, func() bool { return testutil.ToFloat64(m.streams) == 0 }, 10*time.Second, time.Millisecond, "the stream's end is counted")
	assert.Zero(t, testutil.ToFloat64(other.coord.metrics.streams), "the other coordinator counted nothing")
}

// With Config.MetricsToken, /metrics answers its bearer only.
func TestMetricsToken(t *testing.T) {
	const tok = "metrics-token-0123456789"
	e := newEnv(t, func(c *Config) { c.MetricsToken = tok })
	code, body := e.scrape("")
	assert.Equal(t, http.StatusUnauthorized, code)
	assert.NotContains(t, body, "nexodus_")
	code, _ = e.scrape("wrong-token-0123456789")
	assert.Equal(t, http.StatusUnauthorized, code)
	code, body = e.scrape(tok)
	assert.Equal(t, http.StatusOK, code)
	assert.True(t, strings.Contains(body, "nexodus_coordinator_http_requests_total"), "metrics with the token")

	_, err := New(t.Context(), Config{Store: e.store, MetricsToken: "short"})
	require.ErrorContains(t, err, "metrics token")
}
