package client_test

import (
	"context"
	"math"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
	"github.com/nexodus-sdk/nexodus/coordinator"
)

// BenchmarkReconnectSpread measures how a crowd of event streams comes back after a
// coordinator outage long enough for their backoff to reach its cap: 1000 streams with a
// node's settings (MaxBackoff 4 s), the coordinator gone for 12 s and back on the same address;
// the time from its return until each stream is connected again (p50, p99 and the spread, the
// last minus the first).
//
//	go test -run '^$' -bench ReconnectSpread -benchtime 1x ./client/
func BenchmarkReconnectSpread(b *testing.B) {
	const outage = 12 * time.Second
	streams := 1000
	if testing.Short() {
		streams = 50
	}
	path := filepath.Join(b.TempDir(), "coordinator.db")
	unlimited := func(c *coordinator.Config) {
		c.RateLimits = coordinator.DefaultRateLimits()
		c.RateLimits.Requests = coordinator.Limit{Rate: math.Inf(1)} // one user holds every stream here
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	serve := func(ln net.Listener) (stop func()) {
		coord, st := openCoordinator(b, path, unlimited)
		hs := &http.Server{Handler: coord}
		go func() { _ = hs.Serve(ln) }()
		return func() {
			_ = coord.Close() // ends the streams
			_ = hs.Close()
			_ = st.Close()
		}
	}
	stop := serve(ln)
	admin, err := client.New("http://"+addr, client.WithToken(adminToken))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	u, err := admin.CreateUser(ctx, api.CreateUserRequest{Username: "crowd"})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := admin.CreateToken(ctx, u.User.ID, api.CreateTokenRequest{Description: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	user, err := client.New("http://"+addr, client.WithToken(tok.Secret))
	if err != nil {
		b.Fatal(err)
	}

	var mu sync.Mutex
	var lastErr error
	var back time.Time
	var samples []time.Duration
	connected := 0
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range streams {
		s := user.WatchOrganization(wctx, u.PersonalOrganizationID, client.WatchOptions{
			MaxBackoff: 4 * time.Second, // the node's (internal/engine streamMaxBackoff)
			OnState: func(up bool, err error) {
				mu.Lock()
				defer mu.Unlock()
				if !up {
					lastErr = err
					return
				}
				connected++
				if !back.IsZero() {
					samples = append(samples, time.Since(back))
				}
			},
		})
		defer s.Close()
		go func() { // a node reads its stream; an unread one would stall on its first event
			for {
				if _, err := s.Next(wctx); err != nil {
					return
				}
			}
		}()
	}
	waitFor := func(what string, cond func() bool) {
		deadline := time.Now().Add(2 * time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				mu.Lock()
				defer mu.Unlock()
				b.Fatalf("%s: not within 2 minutes: %d connected, %d back; last error %v", what, connected, len(samples), lastErr)
			}
			time.Sleep(10 * time.Millisecond) // sampling interval of the measurement
		}
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return connected }
	waitFor("streams connected", func() bool { return count() >= streams })
	b.ResetTimer()
	for range b.N {
		stop()
		time.Sleep(outage) // the outage itself
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		mu.Lock()
		back, samples = time.Now(), nil
		mu.Unlock()
		stop = serve(ln)
		waitFor("streams back", func() bool { mu.Lock(); defer mu.Unlock(); return len(samples) >= streams })
	}
	b.StopTimer()
	stop()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(samples)
	b.ReportMetric(samples[len(samples)/2].Seconds(), "p50-s")
	b.ReportMetric(samples[len(samples)*99/100].Seconds(), "p99-s")
	b.ReportMetric((samples[len(samples)-1] - samples[0]).Seconds(), "spread-s")
}
