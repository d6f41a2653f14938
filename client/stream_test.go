package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
)

// The tests of this file run in synctest bubbles against a memServer: the stream's backoffs,
// Retry-After waits and idle timeouts take no real time, and the times between connections
// are exactly what the stream waited.

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
	assert.NoError(s.t, err)
	s.raw(fmt.Sprintf("id: %d\nevent: %s\ndata: %s\n\n", rev, typ, data))
}

func (s *sseWriter) raw(text string) {
	_, _ = io.WriteString(s.w, text)
	s.w.(http.Flusher).Flush()
}

// newStreamServer runs handler for each connection, with the Last-Event-ID it carried, and
// checks the headers every stream request must have.
func newStreamServer(t *testing.T, handler func(n int, lastID string, w http.ResponseWriter, r *http.Request)) *memServer {
	return newMemServer(func(n int, w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "Bearer tok", r.Header.Get("Authorization"))
		assert.Equal(t, "text/event-stream", r.Header.Get("Accept"))
		handler(n, r.Header.Get("Last-Event-ID"), w, r)
	})
}

// next reads one event, failing the test on error. The deadline is virtual: it passes only
// when the stream waits that long for nothing.
func next(t *testing.T, s *EventStream) api.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
	defer cancel()
	ev, err := s.Next(ctx)
	require.NoError(t, err)
	return ev
}

func expectRevisions(t *testing.T, s *EventStream, want ...int64) {
	t.Helper()
	for _, w := range want {
		ev := next(t, s)
		require.Equal(t, w, ev.Revision, "revision of a %s event", ev.Type)
	}
}

// within asserts lo <= d <= hi.
func within(t *testing.T, d, lo, hi time.Duration, what string) {
	t.Helper()
	assert.GreaterOrEqual(t, d, lo, what)
	assert.LessOrEqual(t, d, hi, what)
}

// TestStreamResume drops the connection in the middle of an event and checks that the stream
// reconnects with Last-Event-ID and delivers every event once, in order, even when the server
// repeats events the client already has.
func TestStreamResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
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
				assert.Failf(t, "unexpected Last-Event-ID", "connection %d: %q", n, lastID)
			}
			<-r.Context().Done()
		})
		var mu sync.Mutex
		var states []bool
		s := srv.client(t).WatchDevice(t.Context(), "d 1", WatchOptions{OnState: func(connected bool, err error) {
			mu.Lock()
			defer mu.Unlock()
			states = append(states, connected)
		}})
		ev := next(t, s)
		assert.Equal(t, api.EventSync, ev.Type)
		assert.EqualValues(t, 1, ev.Revision)
		assert.Len(t, ev.Devices, 1)
		expectRevisions(t, s, 2, 3, 4, 5)
		assert.EqualValues(t, 5, s.Revision())
		require.NoError(t, s.Close())
		assert.Equal(t, []string{"", "3"}, srv.header("Last-Event-ID"))
		assert.Equal(t, "/api/v1/devices/d%201/events", srv.requests()[0].path)
		_, err := s.Next(t.Context())
		assert.ErrorIs(t, err, ErrStreamClosed)
		mu.Lock()
		defer mu.Unlock()
		assert.Equal(t, []bool{true, false, true, false}, states, "OnState calls")
	})
}

// TestStreamIdleTimeout: a connection that answers no headers, or goes silent after its
// events, is replaced once the idle timeout has passed, to the (virtual) millisecond.
func TestStreamIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newStreamServer(t, func(n int, lastID string, w http.ResponseWriter, r *http.Request) {
			switch n {
			case 1: // no answer at all
			case 2:
				startSSE(t, w).event(1, api.EventSync)
			default:
				assert.Equal(t, "1", lastID)
				startSSE(t, w).event(2, api.EventDeviceAdded)
			}
			<-r.Context().Done() // then silence
		})
		var idle []error
		var mu sync.Mutex
		s := srv.client(t).WatchOrganization(t.Context(), "o1", WatchOptions{OnState: func(connected bool, err error) {
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, errIdle) {
				idle = append(idle, err)
			}
		}})
		expectRevisions(t, s, 1, 2)
		require.NoError(t, s.Close())
		// Each replacement waits the idle timeout, then the first backoff step (the attempt
		// count starts over after a healthy connection).
		gaps := srv.gaps()
		require.Len(t, gaps, 2)
		for i, g := range gaps {
			within(t, g, DefaultIdleTimeout+DefaultMinBackoff/2, DefaultIdleTimeout+DefaultMinBackoff, fmt.Sprintf("gap %d", i+1))
		}
		mu.Lock()
		defer mu.Unlock()
		require.Len(t, idle, 2)
		for _, err := range idle {
			assert.EqualError(t, err, "client: watch organization o1: no data from the coordinator within the idle timeout")
		}
	})
}

// TestStreamHeartbeatsKeepConnection: heartbeats more often than the idle timeout keep one
// connection up for as long as they come.
func TestStreamHeartbeatsKeepConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newStreamServer(t, func(n int, lastID string, w http.ResponseWriter, r *http.Request) {
			sse := startSSE(t, w)
			sse.event(1, api.EventSync)
			for {
				select {
				case <-r.Context().Done():
					return
				case <-time.After(DefaultIdleTimeout - time.Second):
					sse.raw(": ping\n\n")
				}
			}
		})
		s := srv.client(t).WatchDevice(t.Context(), "d1", WatchOptions{})
		expectRevisions(t, s, 1)
		time.Sleep(time.Hour)
		assert.Equal(t, 1, srv.count(), "connections in an hour of heartbeats")
		require.NoError(t, s.Close())
	})
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
			synctest.Test(t, func(t *testing.T) {
				srv := newStreamServer(t, func(n int, lastID string, w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(tt.status)
					_ = json.NewEncoder(w).Encode(api.Error{Code: tt.code, Message: "no"})
				})
				var final atomic.Value
				s := srv.client(t).WatchDevice(t.Context(), "d1", WatchOptions{OnState: func(connected bool, err error) {
					if err != nil {
						final.Store(err)
					}
				}})
				defer s.Close()
				_, err := s.Next(t.Context())
				require.ErrorIs(t, err, tt.want)
				assert.ErrorContains(t, err, "client: watch device d1: no ("+tt.code)
				assert.Equal(t, 1, srv.count(), "connections")
				e, _ := final.Load().(error)
				assert.ErrorIs(t, e, tt.want, "OnState's final error")
				<-s.Done()
			})
		})
	}
}

// TestStreamRetriesServerErrors: a 503 (whose Retry-After is waited for), a wrong content type,
// bad event data, a clean server close and a 502 all lead to a reconnection, not to an error.
func TestStreamRetriesServerErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newStreamServer(t, func(n int, lastID string, w http.ResponseWriter, r *http.Request) {
			switch n {
			case 1:
				w.Header().Set("Retry-After", "20")
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			case 2:
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, "{}")
				return
			case 3:
				startSSE(t, w).event(1, api.EventSync)
				return // clean close
			case 4:
				startSSE(t, w).raw("id: 2\ndata: not json\n\n")
				return
			case 5:
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			startSSE(t, w).event(2, api.EventDeviceAdded)
			<-r.Context().Done()
		})
		s := srv.client(t).WatchDevice(t.Context(), "d1", WatchOptions{})
		defer s.Close()
		expectRevisions(t, s, 1, 2)
		assert.Equal(t, []string{"", "", "", "1", "1", "1"}, srv.header("Last-Event-ID"))
		assert.Equal(t, 20*time.Second, srv.gaps()[0], "the wait after a 503 with Retry-After: 20")
	})
}

// TestStreamBackoffGrows: failed attempts back off exponentially, with jitter, from MinBackoff
// to MaxBackoff; a healthy connection starts the count over.
func TestStreamBackoffGrows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newStreamServer(t, func(n int, lastID string, w http.ResponseWriter, r *http.Request) {
			switch {
			case n <= 6:
				w.WriteHeader(http.StatusInternalServerError)
			case n == 7:
				startSSE(t, w).event(1, api.EventSync) // healthy, then closed
			default:
				startSSE(t, w).event(2, api.EventDeviceAdded)
				<-r.Context().Done()
			}
		})
		s := srv.client(t).WatchDevice(t.Context(), "d1", WatchOptions{MinBackoff: time.Second, MaxBackoff: 8 * time.Second})
		defer s.Close()
		expectRevisions(t, s, 1, 2)
		gaps := srv.gaps()
		require.Len(t, gaps, 7)
		for i, d := range []time.Duration{1, 2, 4, 8, 8, 8, 1} {
			d *= time.Second
			within(t, gaps[i], d/2, d, fmt.Sprintf("wait %d", i+1))
		}
	})
}

// TestStreamSyncAlwaysDelivered: a sync at or below the resume point (the log was truncated,
// the coordinator restarted) replaces the state and resets the revision.
func TestStreamSyncAlwaysDelivered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newStreamServer(t, func(n int, lastID string, w http.ResponseWriter, r *http.Request) {
			assert.Equal(t, "10", lastID)
			sse := startSSE(t, w)
			sse.event(5, api.EventSync)
			sse.event(6, api.EventDeviceAdded)
			<-r.Context().Done()
		})
		s := srv.client(t).WatchDevice(t.Context(), "d1", WatchOptions{AfterRevision: 10})
		defer s.Close()
		assert.EqualValues(t, 10, s.Revision(), "initial Revision")
		ev := next(t, s)
		assert.Equal(t, api.EventSync, ev.Type)
		assert.EqualValues(t, 5, ev.Revision)
		expectRevisions(t, s, 6)
	})
}

// TestStreamNextTimeoutKeepsConnection: a Next whose context ends leaves the stream intact.
func TestStreamNextTimeoutKeepsConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
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
		s := srv.client(t).WatchDevice(t.Context(), "d1", WatchOptions{})
		defer s.Close()
		expectRevisions(t, s, 1)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := s.Next(ctx)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)
		close(release)
		expectRevisions(t, s, 2)
		assert.Equal(t, 1, srv.count(), "connections")
	})
}

// TestStreamClose: Close unblocks a waiting Next at once, whether the stream is connected or
// backing off, and leaves no goroutine behind (the bubble would not end otherwise); a second
// Close returns ErrStreamClosed, which wraps net.ErrClosed.
func TestStreamClose(t *testing.T) {
	for _, tt := range []struct {
		name   string
		status int
	}{{"connected", http.StatusOK}, {"backing off", http.StatusInternalServerError}} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := newStreamServer(t, func(n int, lastID string, w http.ResponseWriter, r *http.Request) {
					if tt.status != http.StatusOK {
						w.WriteHeader(tt.status)
						return
					}
					startSSE(t, w).raw(": ping\n\n")
					<-r.Context().Done()
				})
				s := srv.client(t).WatchDevice(t.Context(), "d1", WatchOptions{MinBackoff: time.Hour, MaxBackoff: time.Hour})
				errc := make(chan error, 1)
				go func() {
					_, err := s.Next(t.Context())
					errc <- err
				}()
				synctest.Wait() // connected and reading, or waiting the hour
				start := time.Now()
				require.NoError(t, s.Close())
				assert.Zero(t, time.Since(start), "Close waited")
				assert.ErrorIs(t, <-errc, ErrStreamClosed)
				err := s.Close()
				assert.ErrorIs(t, err, ErrStreamClosed, "second Close")
				assert.ErrorIs(t, err, net.ErrClosed, "second Close")
				assert.Equal(t, 1, srv.count(), "connections")
			})
		})
	}
}

func TestStreamContextCanceled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newStreamServer(t, func(n int, lastID string, w http.ResponseWriter, r *http.Request) {
			startSSE(t, w)
			<-r.Context().Done()
		})
		ctx, cancel := context.WithCancel(t.Context())
		s := srv.client(t).WatchDevice(ctx, "d1", WatchOptions{})
		cancel()
		_, err := s.Next(t.Context())
		assert.ErrorIs(t, err, context.Canceled)
		<-s.Done()
		assert.NoError(t, s.Close(), "the first Close of an ended stream")
	})
}

// TestStreamReconnect: Reconnect replaces a connection that looks healthy (but whose packets
// may no longer arrive) at once, and ends a backoff at once; the stream resumes from the last
// delivered revision.
func TestStreamReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newStreamServer(t, func(n int, lastID string, w http.ResponseWriter, r *http.Request) {
			switch n {
			case 1:
				sse := startSSE(t, w)
				sse.event(1, api.EventSync)
				sse.event(2, api.EventDeviceAdded)
				<-r.Context().Done()
			case 2:
				w.WriteHeader(http.StatusInternalServerError)
			default:
				assert.Equal(t, "2", lastID, "connection %d", n)
				startSSE(t, w).event(3, api.EventDeviceUpdated)
				<-r.Context().Done()
			}
		})
		// No retry would come in time: every wait is an hour.
		s := srv.client(t).WatchDevice(t.Context(), "d1", WatchOptions{MinBackoff: time.Hour, MaxBackoff: time.Hour})
		defer s.Close()
		expectRevisions(t, s, 1, 2)
		s.Reconnect() // connection 1 is replaced by 2, which fails: an hour's wait
		synctest.Wait()
		require.Equal(t, 2, srv.count())
		time.Sleep(time.Minute)
		s.Reconnect()
		expectRevisions(t, s, 3)
		assert.Equal(t, []time.Duration{0, time.Minute}, srv.gaps())
		assert.Equal(t, []string{"", "2", "2"}, srv.header("Last-Event-ID"))
	})
}
