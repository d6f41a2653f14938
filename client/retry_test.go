package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fastRetry keeps the backoff short: the tests check which requests are retried, not when.
var fastRetry = WithRetry(3, time.Millisecond, 5*time.Millisecond)

// statusServer answers the i-th request (from 0) with statuses[i] (the last one repeats) and
// counts requests.
func statusServer(t *testing.T, header http.Header, statuses ...int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		status := statuses[min(i, len(statuses)-1)]
		for k, v := range header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if status >= 300 {
			_, _ = io.WriteString(w, `{"message":"try later"}`)
			return
		}
		_, _ = io.WriteString(w, `{"id":"d1","hostname":"h"}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func newTestClient(t *testing.T, url string, opts ...Option) *Client {
	t.Helper()
	c, err := New(url, append([]Option{WithToken("tok")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRetryGET503Then200(t *testing.T) {
	srv, n := statusServer(t, nil, 503, 200)
	c := newTestClient(t, srv.URL, fastRetry)
	d, err := c.GetDevice(t.Context(), "d1")
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "d1" || n.Load() != 2 {
		t.Errorf("device %+v after %d requests, want d1 after 2", d, n.Load())
	}
}

func TestNoRetryPOST500(t *testing.T) {
	srv, n := statusServer(t, nil, 500, 200)
	c := newTestClient(t, srv.URL, fastRetry)
	_, err := c.CreateUser(t.Context(), apiCreateUser("alice"))
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 500 {
		t.Fatalf("err = %v, want an *APIError with status 500", err)
	}
	if n.Load() != 1 {
		t.Errorf("%d requests, want 1: a POST must not be retried after a 500", n.Load())
	}
}

func TestNoRetryPATCH502(t *testing.T) {
	srv, n := statusServer(t, nil, 502, 200)
	c := newTestClient(t, srv.URL, fastRetry)
	if _, err := c.UpdateDevice(t.Context(), "d1", apiUpdateHostname("x")); err == nil {
		t.Fatal("no error")
	}
	if n.Load() != 1 {
		t.Errorf("%d requests, want 1", n.Load())
	}
}

func TestRetry429WithRetryAfter(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			srv, n := statusServer(t, http.Header{"Retry-After": {"1"}}, 429, 200)
			c := newTestClient(t, srv.URL, fastRetry)
			var err error
			if method == http.MethodGet {
				_, err = c.GetDevice(t.Context(), "d1")
			} else {
				_, err = c.RegisterDevice(t.Context(), apiRegister())
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.Load() != 2 {
				t.Errorf("%d requests, want 2", n.Load())
			}
		})
	}
}

func TestRetryPOST503(t *testing.T) {
	srv, n := statusServer(t, nil, 503, 503, 200)
	c := newTestClient(t, srv.URL, fastRetry)
	if _, err := c.RegisterDevice(t.Context(), apiRegister()); err != nil {
		t.Fatal(err)
	}
	if n.Load() != 3 {
		t.Errorf("%d requests, want 3", n.Load())
	}
}

func TestRetryAfterBeyondDeadline(t *testing.T) {
	srv, n := statusServer(t, http.Header{"Retry-After": {"3600"}}, 429, 200)
	c := newTestClient(t, srv.URL, fastRetry)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err := c.GetDevice(ctx, "d1")
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 429 {
		t.Fatalf("err = %v, want the 429 itself", err)
	}
	if n.Load() != 1 {
		t.Errorf("%d requests, want 1", n.Load())
	}
}

func TestRetryExhausted(t *testing.T) {
	srv, n := statusServer(t, nil, 503)
	c := newTestClient(t, srv.URL, fastRetry)
	_, err := c.ListDevices(t.Context())
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if n.Load() != 4 {
		t.Errorf("%d requests, want 4 (1 + 3 retries)", n.Load())
	}
}

func TestNoRetryOn4xx(t *testing.T) {
	srv, n := statusServer(t, nil, 404)
	c := newTestClient(t, srv.URL, fastRetry)
	if _, err := c.GetDevice(t.Context(), "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if n.Load() != 1 {
		t.Errorf("%d requests, want 1", n.Load())
	}
}

func TestRetryDisabled(t *testing.T) {
	srv, n := statusServer(t, nil, 503, 200)
	c := newTestClient(t, srv.URL, WithRetry(0, 0, 0))
	if _, err := c.GetDevice(t.Context(), "d1"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	if n.Load() != 1 {
		t.Errorf("%d requests, want 1", n.Load())
	}
}

// failingTransport fails the first request with err, then passes requests to the default
// transport; it counts attempts.
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
		post     bool
		attempts int32
	}{
		{"GET after dial error", dialErr, false, 2},
		{"GET after read error", readErr, false, 2},
		{"GET after EOF", io.ErrUnexpectedEOF, false, 2},
		{"POST after dial error: never sent", dialErr, true, 2},
		{"POST after read error: may have been processed", readErr, true, 1},
		{"POST after EOF", io.ErrUnexpectedEOF, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := statusServer(t, nil, 200)
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			ft := &failingTransport{err: tt.err, inner: tr}
			c := newTestClient(t, srv.URL, fastRetry, WithHTTPClient(&http.Client{Transport: ft}))
			var err error
			if tt.post {
				_, err = c.RegisterDevice(t.Context(), apiRegister())
			} else {
				_, err = c.GetDevice(t.Context(), "d1")
			}
			if got := ft.n.Load(); got != tt.attempts {
				t.Errorf("%d attempts, want %d (err %v)", got, tt.attempts, err)
			}
			if (tt.attempts == 2) != (err == nil) {
				t.Errorf("err = %v", err)
			}
			if err != nil && !errors.Is(err, tt.err) {
				t.Errorf("err = %v does not wrap %v", err, tt.err)
			}
		})
	}
}

func TestCheckRetryCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), methodKey{}, http.MethodGet))
	cancel()
	retry, err := checkRetry(ctx, &http.Response{StatusCode: 503, Header: http.Header{}}, nil)
	if retry || !errors.Is(err, context.Canceled) {
		t.Errorf("checkRetry after cancel = %v, %v", retry, err)
	}
}

func TestJitteredBackoffBounds(t *testing.T) {
	for attempt := range 70 {
		d := jitteredBackoff(10*time.Millisecond, time.Second, attempt)
		want := time.Second
		if attempt < 7 { // 10ms·2^7 > 1s
			want = 10 * time.Millisecond << attempt
		}
		if d < want/2 || d > want {
			t.Errorf("attempt %d: %v outside [%v, %v]", attempt, d, want/2, want)
		}
	}
}

func TestLoggerGetsRetries(t *testing.T) {
	var buf safeBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, _ := statusServer(t, nil, 503, 200)
	c := newTestClient(t, srv.URL, fastRetry, WithLogger(logger))
	if _, err := c.GetDevice(t.Context(), "d1"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "retrying request") || strings.Contains(buf.String(), "tok") {
		t.Errorf("log:\n%s", buf.String())
	}
}

type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
