package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
)

// callByMethod makes one API call of each method the retry policy tells apart.
var callByMethod = map[string]func(ctx context.Context, c *Client) error{
	http.MethodGet: func(ctx context.Context, c *Client) error {
		_, err := c.GetDevice(ctx, "d1")
		return err
	},
	http.MethodPost: func(ctx context.Context, c *Client) error {
		_, err := c.RegisterDevice(ctx, api.RegisterDeviceRequest{PublicKey: "k", Hostname: "h"})
		return err
	},
	http.MethodPatch: func(ctx context.Context, c *Client) error {
		host := "x"
		_, err := c.UpdateDevice(ctx, "d1", api.UpdateDeviceRequest{Hostname: &host})
		return err
	},
}

// TestRetryPolicy runs in virtual time (synctest): which answers are retried, how often, and
// that a Retry-After is waited for exactly.
func TestRetryPolicy(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		header   http.Header
		codes    []int
		opts     []Option
		deadline time.Duration // of the call's context; 0: none
		requests int
		status   int             // of the final *APIError; 0: success
		gaps     []time.Duration // when set, the exact waits between the requests
	}{
		{name: "GET 503 then 200", method: "GET", codes: []int{503, 200}, requests: 2},
		{name: "POST 500 is not retried", method: "POST", codes: []int{500, 200}, requests: 1, status: 500},
		{name: "PATCH 502 is not retried", method: "PATCH", codes: []int{502, 200}, requests: 1, status: 502},
		{name: "POST 503 is retried", method: "POST", codes: []int{503, 503, 200}, requests: 3},
		{name: "GET 404 is not retried", method: "GET", codes: []int{404}, requests: 1, status: 404},
		{name: "retries run out", method: "GET", codes: []int{503}, opts: []Option{WithRetry(3, time.Second, time.Second)},
			requests: 4, status: 503},
		{name: "retries disabled", method: "GET", codes: []int{503, 200}, opts: []Option{WithRetry(0, 0, 0)},
			requests: 1, status: 503},
		{name: "GET 429 waits its Retry-After", method: "GET", header: http.Header{"Retry-After": {"7"}},
			codes: []int{429, 200}, requests: 2, gaps: []time.Duration{7 * time.Second}},
		{name: "POST 429 waits its Retry-After", method: "POST", header: http.Header{"Retry-After": {"1"}},
			codes: []int{429, 200}, requests: 2, gaps: []time.Duration{time.Second}},
		{name: "Retry-After as a date", method: "GET", header: http.Header{"Retry-After": {"Sat, 01 Jan 2000 00:00:10 GMT"}},
			codes: []int{503, 200}, requests: 2, gaps: []time.Duration{10 * time.Second}},
		{name: "Retry-After beyond the deadline ends the retries", method: "GET", header: http.Header{"Retry-After": {"3600"}},
			codes: []int{429, 200}, deadline: time.Minute, requests: 1, status: 429},
		{name: "Retry-After over the limit ends the retries", method: "GET", header: http.Header{"Retry-After": {"300"}},
			codes: []int{503, 200}, requests: 1, status: 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := newMemServer(statuses(tt.header, tt.codes...))
				c := srv.client(t, tt.opts...)
				ctx := t.Context()
				if tt.deadline > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.deadline)
					defer cancel()
				}
				start := time.Now()
				err := callByMethod[tt.method](ctx, c)
				assert.Equal(t, tt.requests, srv.count(), "requests")
				if tt.status == 0 {
					require.NoError(t, err)
				} else {
					var ae *APIError
					require.ErrorAs(t, err, &ae)
					assert.Equal(t, tt.status, ae.StatusCode)
				}
				if tt.gaps != nil {
					assert.Equal(t, tt.gaps, srv.gaps())
				}
				if tt.requests == 1 {
					assert.Zero(t, time.Since(start), "a call that is not retried does not wait")
				}
			})
		})
	}
}

// TestRetryBackoffGrows: without Retry-After the waits between attempts double from the
// minimum up to the maximum, each jittered into [d/2, d] (virtual time).
func TestRetryBackoffGrows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newMemServer(statuses(nil, 503, 503, 503, 503, 503, 200))
		c := srv.client(t, WithRetry(5, time.Second, 5*time.Second))
		_, err := c.GetDevice(t.Context(), "d1")
		require.NoError(t, err)
		gaps := srv.gaps()
		require.Len(t, gaps, 5)
		for i, d := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second} {
			assert.GreaterOrEqual(t, gaps[i], d/2, "wait %d", i+1)
			assert.LessOrEqual(t, gaps[i], d, "wait %d", i+1)
		}
	})
}

// failingTransport fails the first request with err, then passes requests to inner; it counts
// attempts.
type failingTransport struct {
	err   error
	n     atomic.Int32
	inner http.RoundTripper
}

func (f *failingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.n.Add(1) == 1 {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		return nil, f.err
	}
	return f.inner.RoundTrip(r)
}

func TestRetryTransportErrors(t *testing.T) {
	dialErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	readErr := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	tests := []struct {
		name     string
		err      error
		method   string
		attempts int32
	}{
		{"GET after dial error", dialErr, "GET", 2},
		{"GET after read error", readErr, "GET", 2},
		{"GET after EOF", io.ErrUnexpectedEOF, "GET", 2},
		{"POST after dial error: never sent", dialErr, "POST", 2},
		{"POST after read error: may have been processed", readErr, "POST", 1},
		{"POST after EOF", io.ErrUnexpectedEOF, "POST", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ft := &failingTransport{err: tt.err, inner: newMemServer(statuses(nil, 200))}
				c := newTestClient(t, "http://mem.test", WithHTTPClient(&http.Client{Transport: ft}))
				err := callByMethod[tt.method](t.Context(), c)
				assert.Equal(t, tt.attempts, ft.n.Load(), "attempts (err %v)", err)
				if tt.attempts == 2 {
					require.NoError(t, err)
				} else {
					require.ErrorIs(t, err, tt.err)
				}
			})
		})
	}
}

func TestCheckRetryCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), methodKey{}, http.MethodGet))
	cancel()
	retry, err := checkRetry(ctx, &http.Response{StatusCode: 503, Header: http.Header{}}, nil)
	assert.False(t, retry)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestJitteredBackoffBounds(t *testing.T) {
	for attempt := range 70 {
		d := jitteredBackoff(10*time.Millisecond, time.Second, attempt)
		want := time.Second
		if attempt < 7 { // 10ms·2^7 > 1s
			want = 10 * time.Millisecond << attempt
		}
		assert.GreaterOrEqual(t, d, want/2, "attempt %d", attempt)
		assert.LessOrEqual(t, d, want, "attempt %d", attempt)
	}
}

func TestLoggerGetsRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer // retryablehttp logs on the caller's goroutine
		logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c := newMemServer(statuses(nil, 503, 200)).client(t, WithLogger(logger))
		_, err := c.GetDevice(t.Context(), "d1")
		require.NoError(t, err)
		assert.Contains(t, buf.String(), "retrying request")
		assert.NotContains(t, buf.String(), "tok", "the log shows the token")
	})
}
