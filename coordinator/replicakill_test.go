package coordinator_test

// Killing one replica loses no event: two coordinators on one store behind a TCP proxy (a
// load balancer that sends each connection to the first replica that accepts it); a device's
// stream is on the first, events are written through the second, the first dies, and the
// stream reconnects through the proxy to the second and resumes from its last event id.

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
	"github.com/nexodus-sdk/nexodus/coordinator"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
	"github.com/nexodus-sdk/nexodus/coordinator/store/postgres"
	"github.com/nexodus-sdk/nexodus/coordinator/store/postgres/pgtest"
	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
)

const killAdminToken = "test-admin-token-0123456789"

// TestReplicaKillSQLite runs both replicas on one SQLite store (one process, one file).
func TestReplicaKillSQLite(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "coord.db"))
	require.NoError(t, err, "open store")
	t.Cleanup(func() { assert.NoError(t, st.Close(), "store Close") })
	testReplicaKill(t, st, st)
}

// TestReplicaKillPostgres runs each replica on a store of its own on one PostgreSQL
// database, so events written on the second reach the first's stream through LISTEN/NOTIFY.
func TestReplicaKillPostgres(t *testing.T) {
	url := pgtest.Database(t)
	open := func() store.Store {
		st, err := postgres.Open(context.Background(), url)
		require.NoError(t, err, "open store")
		t.Cleanup(func() { assert.NoError(t, st.Close(), "store Close") })
		return st
	}
	testReplicaKill(t, open(), open())
}

func testReplicaKill(t *testing.T, storeA, storeB store.Store) {
	ctx := t.Context()
	a := startReplica(t, storeA)
	b := startReplica(t, storeB)
	p := startProxy(t, a.addr, b.addr)

	// Everything but the watched stream talks to B directly.
	admin := killClient(t, "http://"+b.addr, killAdminToken)
	u, err := admin.CreateUser(ctx, api.CreateUserRequest{Username: "alice"})
	require.NoError(t, err, "create user")
	tok, err := admin.CreateToken(ctx, u.User.ID, api.CreateTokenRequest{})
	require.NoError(t, err, "create token")
	alice := admin.WithToken(tok.Secret)
	watcher, watcherToken := killRegister(t, alice, u.PersonalOrganizationID, "watcher")
	sender, senderToken := killRegister(t, alice, u.PersonalOrganizationID, "sender")
	senderC := alice.WithToken(senderToken)

	var connects atomic.Int64
	s := killClient(t, "http://"+p.addr(), watcherToken).WatchDevice(ctx, watcher.Device.ID, client.WatchOptions{
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		OnState: func(connected bool, _ error) {
			if connected {
				connects.Add(1)
			}
		},
	})
	defer s.Close()
	first, err := s.Next(ctx)
	require.NoError(t, err, "first event")
	require.Equal(t, api.EventSync, first.Type, "first event")
	require.Equal(t, map[string]int{a.addr: 1}, p.dialed(), "the stream's connection went to A")

	// The writer: signals 1..n to the watcher, and a rename of the sender after every tenth.
	// Half of them may race the kill; the rest are written only once A is gone.
	const n = 60
	var want []string
	for i := 1; i <= n; i++ {
		want = append(want, "signal "+strconv.Itoa(i))
		if i%10 == 0 {
			want = append(want, "sender-"+strconv.Itoa(i))
		}
	}
	killed := make(chan struct{})
	wrote := make(chan error, 1)
	go func() {
		wrote <- func() error {
			for i := 1; i <= n; i++ {
				if i == n/2+1 {
					select {
					case <-killed:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				if err := senderC.Signal(ctx, watcher.Device.ID, []byte(strconv.Itoa(i))); err != nil {
					return fmt.Errorf("signal %d: %w", i, err)
				}
				if i%10 == 0 {
					host := "sender-" + strconv.Itoa(i)
					if _, err := senderC.UpdateDevice(ctx, sender.Device.ID, api.UpdateDeviceRequest{Hostname: &host}); err != nil {
						return fmt.Errorf("rename %d: %w", i, err)
					}
				}
			}
			return nil
		}()
	}()

	var got []string
	var last int64
	read := func(until int) {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for len(got) < until {
			ev, err := s.Next(rctx)
			require.NoError(t, err, "waiting for event %d (got %v)", len(got)+1, got)
			if ev.Type == api.EventRelay { // not part of the log
				continue
			}
			require.Greater(t, ev.Revision, last, "revisions increase (event %s after %v)", ev.Type, got)
			last = ev.Revision
			switch ev.Type {
			case api.EventSignal:
				got = append(got, "signal "+string(ev.Signal.Payload))
			case api.EventDeviceUpdated:
				require.Equal(t, sender.Device.ID, ev.Device.ID, "updated device")
				got = append(got, ev.Device.Hostname)
			default:
				require.Failf(t, "unexpected event", "%s at revision %d after %v", ev.Type, ev.Revision, got)
			}
		}
	}
	read(10)
	a.kill(t)
	close(killed)
	read(len(want))
	require.NoError(t, <-wrote, "writer")
	require.Equal(t, want, got, "every event once, in order, across the kill")
	assert.GreaterOrEqual(t, connects.Load(), int64(2), "the stream reconnected")
	assert.GreaterOrEqual(t, p.dialed()[b.addr], 1, "the stream reconnected to B")
	assert.Equal(t, last, s.Revision(), "the stream's resume point")
}

// replica is one coordinator on its own TCP listener.
type replica struct {
	addr  string
	coord *coordinator.Server
	hs    *http.Server
	done  chan struct{}
	once  sync.Once
}

func startReplica(t *testing.T, st store.Store) *replica {
	t.Helper()
	coord, err := coordinator.New(context.Background(), coordinator.Config{
		Store: st, AdminToken: killAdminToken, Logger: slog.New(slog.DiscardHandler), Heartbeat: time.Second,
	})
	require.NoError(t, err, "coordinator.New")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = coord.Close()
		require.NoError(t, err, "listen")
	}
	r := &replica{addr: ln.Addr().String(), coord: coord, hs: &http.Server{Handler: coord, ReadHeaderTimeout: 10 * time.Second}, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		_ = r.hs.Serve(ln)
	}()
	t.Cleanup(func() { r.kill(t) })
	return r
}

// kill ends the replica as a crash would, seen from the network: its listener and every
// connection close at once (http.Server.Close does not wait for handlers or say goodbye);
// then the coordinator's goroutines are stopped, so that none outlives the test.
func (r *replica) kill(t *testing.T) {
	r.once.Do(func() {
		assert.NoError(t, r.hs.Close(), "http server Close")
		<-r.done
		assert.NoError(t, r.coord.Close(), "coordinator Close")
	})
}

// proxy is a TCP load balancer: each connection goes to the first backend that accepts it,
// and ends when either side does.
type proxy struct {
	ln       net.Listener
	backends []string
	wg       sync.WaitGroup

	mu     sync.Mutex
	count  map[string]int
	conns  map[net.Conn]struct{}
	closed bool
}

func startProxy(t *testing.T, backends ...string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err, "proxy listen")
	p := &proxy{ln: ln, backends: backends, count: map[string]int{}, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.serve)
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// dialed counts, per backend, the connections the proxy has made to it.
func (p *proxy) dialed() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.count {
		out[k] = v
	}
	return out
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			return
		}
		p.wg.Go(func() { p.forward(c) })
	}
}

// track remembers a connection for close; false once the proxy is closed.
func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

func (p *proxy) forward(c net.Conn) {
	defer p.untrack(c)
	defer c.Close()
	var up net.Conn
	for _, b := range p.backends {
		d, err := net.DialTimeout("tcp", b, 5*time.Second)
		if err != nil {
			continue // refused: that replica is gone
		}
		p.mu.Lock()
		p.count[b]++
		p.mu.Unlock()
		up = d
		break
	}
	if up == nil || !p.track(up) {
		return
	}
	defer p.untrack(up)
	defer up.Close()
	var wg sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Either side ending ends both, as a dead backend's reset would reach the client.
		_ = dst.Close()
		_ = src.Close()
	}
	wg.Go(func() { pipe(up, c) })
	pipe(c, up)
	wg.Wait()
}

func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	_ = p.ln.Close() // ends serve
	p.wg.Wait()
}

func killClient(t *testing.T, url, token string) *client.Client {
	t.Helper()
	c, err := client.New(url, client.WithToken(token), client.WithRetry(2, 10*time.Millisecond, 100*time.Millisecond))
	require.NoError(t, err)
	return c
}

// killRegister registers a device with a fresh WireGuard key and returns the registration
// and the device's token.
func killRegister(t *testing.T, user *client.Client, org, hostname string) (*api.RegisterDeviceResponse, string) {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	reg, err := user.RegisterDevice(t.Context(), api.RegisterDeviceRequest{
		OrganizationID: org, PublicKey: base64.StdEncoding.EncodeToString(k.PublicKey().Bytes()), Hostname: hostname,
	})
	require.NoError(t, err, "register %s", hostname)
	var priv [32]byte
	copy(priv[:], k.Bytes())
	tok, err := client.OpenDeviceToken(priv, *reg)
	require.NoError(t, err)
	return reg, tok
}
