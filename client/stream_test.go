package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
)

// sseWriter writes events the way the coordinator does.
type sseWriter struct {
	t *testing.T
	w http.ResponseWriter
}

func startSSE(t *testing.T, w http.ResponseWriter) *sseWriter {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	return &sseWriter{t: t, w: w}
}

func (s *sseWriter) event(rev int64, typ string) {
	ev := api.Event{Revision: rev, Type: typ, OrganizationID: "o1"}
	if typ == api.EventSync {
		ev.Devices = []api.Device{{ID: "d1"}}
	} else {
		ev.Device = &api.Device{ID: fmt.Sprintf("d%d", rev)}
	}
	data, err := json.Marshal(ev)
	if err != nil {
		s.t.Error(err)
	}
	s.raw(fmt.Sprintf("id: %d\nevent: %s\ndata: %s\n\n", rev, typ, data))
}

func (s *sseWriter) raw(text string) {
	_, _ = io.WriteString(s.w, text)
	s.w.(http.Flusher).Flush()
}

// streamServer runs handler for each connection and records the Last-Event-ID each carried.
type streamServer struct {
	*httptest.Server
	mu      sync.Mutex
	lastIDs []string
}

func newStreamServer(t *testing.T, handler func(n int, lastID string, w http.ResponseWriter, r *http.Request)) *streamServer {
	t.Helper()
	s := &streamServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("Authorization"); got != "Bearer tok" {
			t.Errorf("Authorization %q", got)
		}
		if got := r.Header.Get("Accept"); got != "text/event-stream" {
			t.Errorf("Accept %q", got)
		}
		s.mu.Lock()
		s.lastIDs = append(s.lastIDs, r.Header.Get("Last-Event-ID"))
		n := len(s.lastIDs)
		s.mu.Unlock()
		handler(n, r.Header.Get("Last-Event-ID"), w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *streamServer) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lastIDs...)
}

var fastStream = WatchOptions{MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}

// next reads one event with a generous deadline, failing the test on error.
func next(t *testing.T, s *EventStream) api.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ev, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return ev
}

func expectRevisions(t *testing.T, s *EventStream, want ...int64) {
	t.Helper()
	for _, w := range want {
		if ev := next(t, s); ev.Revision != w {
			t.Fatalf("got revision %d (%s), want %d", ev.Revision, ev.Type, w)
		}
	}
}

// TestStreamResume drops the connection in the middle of an event and checks that the stream
// reconnects with Last-Event-ID and delivers every event once, in order, even when the server
// repeats events the client already has.
func TestStreamResume(t *testing.T) {
	srv := newStreamServer(t, func(n int, lastID string, w http.ResponseWriter, r *http.Request) {
		sse := startSSE(t, w)
		switch lastID {
		case "":
			sse.event(1, api.EventSync)
			sse.event(2, api.EventDeviceAdded)
			sse.raw(": ping\n\n")
			sse.event(3, api.EventDeviceUpdated)
			sse.raw("id: 4\nevent: device.added\ndata: {\"revision\":4,")
			panic(http.ErrAbortHandler) // cut the connection mid-event
		case "3":
			sse.event(2, api.EventDeviceAdded)
			sse.event(3, api.EventDeviceUpdated)
			sse.event(4, api.EventDeviceAdded)
			sse.event(5, api.EventDeviceRemoved)
			sse.raw(": ping\n\n")
		default:
			t.Errorf("connection %d: unexpected Last-Event-ID %q", n, lastID)
		}
		<-r.Context().Done()
	})
	c := newTestClient(t, srv.URL)
	var states []string
	var mu sync.Mutex
	opts := fastStream
	opts.OnState = func(connected bool, err error) {
		mu.Lock()
		defer mu.Unlock()
		states = append(states, fmt.Sprint(connected))
	}
	s := c.WatchDevice(t.Context(), "d 1", opts)
	ev := next(t, s)
	if ev.Type != api.EventSync || ev.Revision != 1 || len(ev.Devices) != 1 {
		t.Fatalf("first event %+v, want sync at revision 1", ev)
	}
	expectRevisions(t, s, 2, 3, 4, 5)
	if got := s.Revision(); got != 5 {
		t.Errorf("Revision() = %d, want 5", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if ids := srv.ids(); len(ids) != 2 || ids[0] != "" || ids[1] != "3" {
		t.Errorf("Last-Event-IDs %q, want [\"\" \"3\"]", ids)
	}
	if _, err := s.Next(t.Context()); !errors.Is(err, ErrStreamClosed) {
		t.Errorf("Next after Close: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(states) != "[true false true false]" {
		t.Errorf("OnState calls %v", states)
	}
}

// TestStreamIdleTimeout: a connection that goes silent (no heartbeat) is replaced.
func TestStreamIdleTimeout(t *testing.T) {
	srv := newStreamServer(t, func(n int, lastID string, w http.ResponseWriter, r *http.Request) {
		sse := startSSE(t, w)
		switch lastID {
		case "":
			sse.event(1, api.EventSync)
		case "1":
			sse.event(2, api.EventDeviceAdded)
		}
		<-r.Context().Done() // then silence
	})
	c := newTestClient(t, srv.URL)
	idleSeen := make(chan struct{}, 10)
	opts := fastStream
	opts.IdleTimeout = 200 * time.Millisecond
	opts.OnState = func(connected bool, err error) {
		if errors.Is(err, errIdle) {
			idleSeen <- struct{}{}
		}
	}
	s := c.WatchOrganization(t.Context(), "o1", opts)
	defer s.Close()
	expectRevisions(t, s, 1, 2)
	select {
	case <-idleSeen:
	default:
		t.Error("no idle-timeout disconnection reported")
	}
}

func TestStreamTerminalErrors(t *testing.T) {
	for _, tt := range []struct {
		status int
		code   string
		want   error
	}{
		{401, api.CodeUnauthorized, ErrUnauthorized},
		{403, api.CodeForbidden, ErrForbidden},
		{404, api.CodeNotFound, ErrNotFound},
		{400, api.CodeBadRequest, ErrBadRequest},
	} {
		t.Run(tt.code, func(t *testing.T) {
			srv := newStreamServer(t, func(n int, lastID string, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				_ = json.NewEncoder(w).Encode(api.Error{Code: tt.code, Message: "no"})
			})
			c := newTestClient(t, srv.URL)
			var final atomic.Value
			opts := fastStream
			opts.OnState = func(connected bool, err error) {
				if err != nil {
					final.Store(err)
				}
			}
			s := c.WatchDevice(t.Context(), "d1", opts)
			defer s.Close()
			_, err := s.Next(t.Context())
			if !errors.Is(err, tt.want) {
				t.Fatalf("Next: %v, want %v", err, tt.want)
			}
			if got := len(srv.ids()); got != 1 {
				t.Errorf("%d connections, want 1", got)
			}
			if e, _ := final.Load().(error); !errors.Is(e, tt.want) {
				t.Errorf("OnState final error %v", e)
			}
			<-s.Done()
		})
	}
}

// TestStreamRetriesServerErrors: 503s, a wrong content type, bad event data and a clean server
// close all lead to a reconnection, not to an error.
func TestStreamRetriesServerErrors(t *testing.T) {
	srv := newStreamServer(t, func(n int, lastID string, w http.ResponseWriter, r *http.Request) {
		switch n {
		case 1:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		case 2:
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, "{}")
			return
		case 3:
			sse := startSSE(t, w)
			sse.event(1, api.EventSync)
			return // clean close
		case 4:
			sse := startSSE(t, w)
			sse.raw("id: 2\ndata: not json\n\n")
			return
		case 5:
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		sse := startSSE(t, w)
		sse.event(2, api.EventDeviceAdded)
		<-r.Context().Done()
	})
	c := newTestClient(t, srv.URL)
	s := c.WatchDevice(t.Context(), "d1", fastStream)
	defer s.Close()
	expectRevisions(t, s, 1, 2)
	if ids := srv.ids(); fmt.Sprint(ids) != "[   1 1 1]" {
		t.Errorf("Last-Event-IDs %q", ids)
	}
}

// TestStreamSyncAlwaysDelivered: a sync at or below the resume point (the log was truncated,
// the coordinator restarted) replaces the state and resets the revision.
func TestStreamSyncAlwaysDelivered(t *testing.T) {
	srv := newStreamServer(t, func(n int, lastID string, w http.ResponseWriter, r *http.Request) {
		if lastID != "10" {
			t.Errorf("Last-Event-ID %q, want 10", lastID)
		}
		sse := startSSE(t, w)
		sse.event(5, api.EventSync)
		sse.event(6, api.EventDeviceAdded)
		<-r.Context().Done()
	})
	c := newTestClient(t, srv.URL)
	opts := fastStream
	opts.AfterRevision = 10
	s := c.WatchDevice(t.Context(), "d1", opts)
	defer s.Close()
	if s.Revision() != 10 {
		t.Errorf("initial Revision() = %d", s.Revision())
	}
	if ev := next(t, s); ev.Type != api.EventSync || ev.Revision != 5 {
		t.Fatalf("got %+v", ev)
	}
	expectRevisions(t, s, 6)
}

// TestStreamNextTimeoutKeepsConnection: a Next whose context ends leaves the stream intact.
func TestStreamNextTimeoutKeepsConnection(t *testing.T) {
	release := make(chan struct{})
	srv := newStreamServer(t, func(n int, lastID string, w http.ResponseWriter, r *http.Request) {
		sse := startSSE(t, w)
		sse.event(1, api.EventSync)
		select {
		case <-release:
			sse.event(2, api.EventDeviceAdded)
		case <-r.Context().Done():
			return
		}
		<-r.Context().Done()
	})
	c := newTestClient(t, srv.URL)
	s := c.WatchDevice(t.Context(), "d1", fastStream)
	defer s.Close()
	expectRevisions(t, s, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	_, err := s.Next(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next: %v, want DeadlineExceeded", err)
	}
	close(release)
	expectRevisions(t, s, 2)
	if got := len(srv.ids()); got != 1 {
		t.Errorf("%d connections, want 1", got)
	}
}

// TestStreamClose: Close unblocks a waiting Next, is idempotent, and leaves no goroutine
// behind (TestMain checks with goleak), whether the stream is connected or backing off.
func TestStreamClose(t *testing.T) {
	connected := newStreamServer(t, func(n int, lastID string, w http.ResponseWriter, r *http.Request) {
		sse := startSSE(t, w)
		sse.raw(": ping\n\n")
		<-r.Context().Done()
	})
	failing := newStreamServer(t, func(n int, lastID string, w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	})
	for name, url := range map[string]string{"connected": connected.URL, "backing off": failing.URL} {
		t.Run(name, func(t *testing.T) {
			c := newTestClient(t, url)
			s := c.WatchDevice(t.Context(), "d1", WatchOptions{MinBackoff: time.Hour, MaxBackoff: time.Hour})
			errc := make(chan error, 1)
			go func() {
				_, err := s.Next(context.Background())
				errc <- err
			}()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; !errors.Is(err, ErrStreamClosed) {
				t.Errorf("Next: %v, want ErrStreamClosed", err)
			}
			if err := s.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

func TestStreamContextCanceled(t *testing.T) {
	srv := newStreamServer(t, func(n int, lastID string, w http.ResponseWriter, r *http.Request) {
		startSSE(t, w)
		<-r.Context().Done()
	})
	c := newTestClient(t, srv.URL)
	ctx, cancel := context.WithCancel(t.Context())
	s := c.WatchDevice(ctx, "d1", fastStream)
	cancel()
	if _, err := s.Next(t.Context()); !errors.Is(err, context.Canceled) {
		t.Errorf("Next: %v, want context.Canceled", err)
	}
	<-s.Done()
	_ = s.Close()
}

// TestStreamReconnect: Reconnect replaces a connection that looks healthy (but whose packets may
// no longer arrive) at once, without backoff, and resumes from the last delivered revision.
func TestStreamReconnect(t *testing.T) {
	srv := newStreamServer(t, func(n int, lastID string, w http.ResponseWriter, r *http.Request) {
		sse := startSSE(t, w)
		switch lastID {
		case "":
			sse.event(1, api.EventSync)
			sse.event(2, api.EventDeviceAdded)
		case "2":
			sse.event(3, api.EventDeviceUpdated)
		default:
			t.Errorf("connection %d: unexpected Last-Event-ID %q", n, lastID)
		}
		<-r.Context().Done()
	})
	c := newTestClient(t, srv.URL)
	opts := WatchOptions{MinBackoff: time.Minute, MaxBackoff: time.Minute} // no retry would come in time
	s := c.WatchDevice(t.Context(), "d1", opts)
	defer s.Close()
	expectRevisions(t, s, 1, 2)
	s.Reconnect()
	expectRevisions(t, s, 3)
	if ids := srv.ids(); len(ids) != 2 || ids[1] != "2" {
		t.Errorf("Last-Event-IDs %q, want [\"\" \"2\"]", ids)
	}
}
