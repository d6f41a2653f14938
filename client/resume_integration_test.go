package client_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
	"github.com/nexodus-sdk/nexodus/coordinator"
	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
)

// restartable is a real coordinator on a SQLite file behind one fixed URL. It can cut the TCP
// connections that carry event streams, refuse new streams for a while (so that events
// certainly happen while a stream is down), and restart the coordinator on the same file.
type restartable struct {
	t     *testing.T
	path  string
	srv   *httptest.Server
	coord atomic.Pointer[coordinator.Server]
	st    *sqlite.Store

	refuse  atomic.Bool
	refused atomic.Int64

	mu      sync.Mutex
	streams map[net.Conn]bool // connections carrying an event stream now
}

type connKey struct{}

func startRestartable(t *testing.T) *restartable {
	t.Helper()
	r := &restartable{t: t, path: filepath.Join(t.TempDir(), "coordinator.db"), streams: map[net.Conn]bool{}}
	r.open()
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	r.srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, c)
	}
	r.srv.Start()
	t.Cleanup(func() {
		r.coord.Load().Close()
		r.srv.Close()
		assert.NoError(t, r.st.Close(), "store Close")
	})
	return r
}

func (r *restartable) open() {
	r.t.Helper()
	coord, st := openCoordinator(r.t, r.path, nil)
	r.st = st
	r.coord.Store(coord)
}

func (r *restartable) serve(w http.ResponseWriter, req *http.Request) {
	if strings.HasSuffix(req.URL.Path, "/events") {
		if r.refuse.Load() {
			r.refused.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(api.Error{Code: api.CodeUnavailable, Message: "down for the test"})
			return
		}
		// Remember the connection while the stream is on it: once the stream has ended, the
		// client may reuse the connection for other requests, which cut must leave alone.
		c := req.Context().Value(connKey{}).(net.Conn)
		r.mu.Lock()
		r.streams[c] = true
		r.mu.Unlock()
		defer func() {
			r.mu.Lock()
			delete(r.streams, c)
			r.mu.Unlock()
		}()
	}
	r.coord.Load().ServeHTTP(w, req)
}

// cut closes every connection carrying an event stream: to the client, the stream's
// connection just dies, with whatever was in flight on it.
func (r *restartable) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.streams {
		_ = c.Close()
	}
}

// restart closes the coordinator and its store and opens both again on the same file.
func (r *restartable) restart() {
	r.t.Helper()
	require.NoError(r.t, r.coord.Load().Close(), "coordinator Close")
	require.NoError(r.t, r.st.Close(), "store Close")
	r.open()
}

// waitRefused waits until a stream was refused n times in all: the client noticed the drop
// and is trying to reconnect.
func (r *restartable) waitRefused(n int64) {
	r.t.Helper()
	require.Eventually(r.t, func() bool { return r.refused.Load() >= n }, 20*time.Second, 2*time.Millisecond,
		"the stream did not try to reconnect (want %d refusals)", n)
}

// TestStreamResumeAgainstCoordinator reads a device's event stream from the real coordinator
// while the stream's connection is cut in the middle of a burst of events, cut again while
// events happen, and while the coordinator restarts on its SQLite file: the stream must
// deliver every event exactly once and in order, with no fresh sync.
func TestStreamResumeAgainstCoordinator(t *testing.T) {
	r := startRestartable(t)
	ctx := t.Context()
	alice, u := newTenant(t, mustClient(t, r.srv.URL, adminToken), "alice")
	watcher, watcherC := registerIn(t, alice, u.PersonalOrganizationID, "watcher")
	_, sender := registerIn(t, alice, u.PersonalOrganizationID, "sender")

	var connects atomic.Int64
	s := watcherC.WatchDevice(ctx, watcher.Device.ID, client.WatchOptions{
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		OnState: func(connected bool, _ error) {
			if connected {
				connects.Add(1)
			}
		},
	})
	defer s.Close()
	require.Equal(t, api.EventSync, must[api.Event](t, "first event")(s.Next(ctx)).Type, "first event")

	var got []int
	var lastRev int64
	read := func(until int) {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for len(got) == 0 || got[len(got)-1] < until {
			ev, err := s.Next(rctx)
			require.NoError(t, err, "waiting for signal %d (got %v)", until, got)
			require.Equal(t, api.EventSignal, ev.Type, "event at revision %d after signals %v", ev.Revision, got)
			require.Greater(t, ev.Revision, lastRev, "revisions increase")
			lastRev = ev.Revision
			n, err := strconv.Atoi(string(ev.Signal.Payload))
			require.NoError(t, err, "payload %q", ev.Signal.Payload)
			got = append(got, n)
		}
	}
	send := func(from, to int) {
		for i := from; i <= to; i++ {
			if !assert.NoError(t, sender.Signal(ctx, watcher.Device.ID, []byte(strconv.Itoa(i))), "signal %d", i) {
				return
			}
		}
	}

	// 1. Cut the connection in the middle of a burst: some events are delivered, some are in
	// flight on the dying connection, some come after.
	burst := make(chan struct{})
	go func() {
		defer close(burst)
		send(1, 40)
	}()
	read(5)
	r.cut()
	read(40)
	<-burst

	// 2. Cut it while streams are refused, make events, then let it back.
	r.refuse.Store(true)
	r.cut()
	r.waitRefused(1)
	send(41, 50)
	r.refuse.Store(false)
	read(50)

	// 3. Restart the coordinator on the same database while the stream is down.
	r.refuse.Store(true)
	before := r.refused.Load()
	r.restart()
	r.waitRefused(before + 1)
	send(51, 60)
	r.refuse.Store(false)
	read(60)

	want := make([]int, 60)
	for i := range want {
		want[i] = i + 1
	}
	require.Equal(t, want, got, "signals delivered: each of 1..60 once, in order")
	assert.GreaterOrEqual(t, connects.Load(), int64(4), "connections (the stream did not reconnect each time)")
	// Nothing more is pending: a marker event is the next one.
	host := "watcher-2"
	_ = must[*api.Device](t, "marker")(watcherC.UpdateDevice(ctx, watcher.Device.ID, api.UpdateDeviceRequest{Hostname: &host}))
	assert.Equal(t, api.EventDeviceUpdated, must[api.Event](t, "after the signals")(s.Next(ctx)).Type, "after the signals: the marker")
}
