package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
)

// lenientSources lifts the per-address limit, for tests that send many bad credentials from
// the one address of the in-memory network on purpose.
func lenientSources(c *Config) { c.RateLimits.Sources = Unlimited }

// answer is what a request got, read without the test's require (for goroutines).
type answer struct {
	status     int
	code       string
	retryAfter string
	err        error
}

// send sends a request over the env's network; safe in any goroutine.
func (e *env) send(method, path, token string, body any) answer {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return answer{err: err}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, baseURL+path, rd)
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := e.client.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), err: err}
	if resp.StatusCode >= 400 {
		var ae api.Error
		if err := json.Unmarshal(b, &ae); err != nil || ae.Message == "" {
			a.err = fmt.Errorf("status %d with a body that is not an api.Error: %q", resp.StatusCode, b)
		}
		a.code = ae.Code
	}
	return a
}

// serveFrom sends a request straight to the coordinator's handler as if it came from the TCP
// peer remote ("ip:port"), with extra headers (name, value pairs).
func (e *env) serveFrom(remote, method, path, token string, header ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	req := httptest.NewRequest(method, baseURL+path, nil)
	req.RemoteAddr = remote
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	e.coord.ServeHTTP(rec, req)
	return rec
}

// retryAfter requires a 429 with a Retry-After of whole seconds and the rate_limited body, and
// returns the wait.
func retryAfter(t *testing.T, status int, code, header string) time.Duration {
	t.Helper()
	require.Equal(t, http.StatusTooManyRequests, status)
	assert.Equal(t, api.CodeRateLimited, code)
	secs, err := strconv.Atoi(header)
	require.NoError(t, err, "Retry-After %q is not whole seconds", header)
	require.GreaterOrEqual(t, secs, 1)
	return time.Duration(secs) * time.Second
}

// TestSignalFlood: one device floods signals of the largest size. It gets 429 with a
// Retry-After once its byte budget is spent, and may signal again after that wait; meanwhile
// another organization's devices and users, and another device of the flooder's own
// organization, get no 429 and no error.
func TestSignalFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		w := e.newWorld()
		x2 := e.register(w.carolKey.Secret, "", "x2", newKey(t), 201)
		big := api.SignalRequest{Payload: bytes.Repeat([]byte("s"), api.MaxSignalPayload)}
		small := api.SignalRequest{Payload: []byte(`{"type":"candidate","candidate":"candidate:1 1 udp 2130706431 192.0.2.1 51820 typ host"}`)}

		var (
			flood              sync.WaitGroup
			accepted, limited  int
			firstLimited       answer
			floodErrs, otherOK = []answer{}, 0
		)
		flood.Go(func() {
			for range 300 {
				a := e.send("POST", devicePath(w.d2.ID, "/signal"), w.d1.Token, big)
				switch {
				case a.err == nil && a.status == http.StatusNoContent:
					accepted++
				case a.err == nil && a.status == http.StatusTooManyRequests:
					if limited++; limited == 1 {
						firstLimited = a
					}
				default:
					floodErrs = append(floodErrs, a)
				}
			}
		})
		// While the flood goes on: another organization signals and reads, and the flooder's
		// peer signals back within its own budget.
		for range 50 {
			for _, a := range []answer{
				e.send("POST", devicePath(x2.ID, "/signal"), w.x1.Token, small),
				e.send("GET", "/api/v1/users/me", w.carol.Token, nil),
				e.send("GET", orgPath(w.carol.PersonalOrg, "/devices"), w.x1.Token, nil),
				e.send("POST", devicePath(w.d1.ID, "/signal"), w.d2.Token, small),
			} {
				require.NoError(t, a.err)
				require.Less(t, a.status, 300, "a request beside the flood: %+v", a)
				otherOK++
			}
		}
		flood.Wait()
		require.Empty(t, floodErrs, "the flood got only 204 and 429")
		assert.Equal(t, 200, otherOK)
		require.Positive(t, limited, "the flood was never limited")
		// The byte budget (1 MiB) allows 64 signals of 16 KiB; the clock of the bubble does not
		// move while nothing waits, so nothing refills meanwhile.
		assert.Equal(t, (1<<20)/api.MaxSignalPayload, accepted, "signals accepted from the flood")
		wait := retryAfter(t, firstLimited.status, firstLimited.code, firstLimited.retryAfter)

		// The Retry-After is honest: after it, the flooder may signal again.
		a := e.send("POST", devicePath(w.d2.ID, "/signal"), w.d1.Token, big)
		retryAfter(t, a.status, a.code, a.retryAfter)
		time.Sleep(wait)
		a = e.send("POST", devicePath(w.d2.ID, "/signal"), w.d1.Token, big)
		require.NoError(t, a.err)
		assert.Equal(t, http.StatusNoContent, a.status)
	})
}

// TestSignalCountLimit: many small signals hit the count limit, not the byte limit.
func TestSignalCountLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.RateLimits.Signals = Limit{Rate: 1, Burst: 5} })
		w := e.newWorld()
		for range 5 {
			e.call("POST", devicePath(w.d2.ID, "/signal"), w.d1.Token, api.SignalRequest{Payload: []byte("x")}, 204, nil)
		}
		a := e.send("POST", devicePath(w.d2.ID, "/signal"), w.d1.Token, api.SignalRequest{Payload: []byte("x")})
		require.NoError(t, a.err)
		assert.Equal(t, time.Second, retryAfter(t, a.status, a.code, a.retryAfter))
	})
}

// TestDeviceUpdatesAndMoves: PATCHes of one device are limited per device, moves more
// tightly; another device's updates are not affected, and a caller who may not update a device
// does not spend its budget.
func TestDeviceUpdatesAndMoves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, func(c *Config) {
			c.RateLimits.DeviceUpdates = Limit{Rate: 1, Burst: 4}
			c.RateLimits.Moves = Limit{Rate: 1.0 / 60, Burst: 2}
		})
		w := e.newWorld()
		patch := func(d device, token string, req api.UpdateDeviceRequest) answer {
			a := e.send("PATCH", devicePath(d.ID, ""), token, req)
			require.NoError(t, a.err)
			return a
		}
		host := func(s string) api.UpdateDeviceRequest { return api.UpdateDeviceRequest{Hostname: &s} }
		// An outsider's attempts are refused before they cost the device anything.
		for range 10 {
			assert.Equal(t, 404, patch(w.d1, w.carol.Token, host("evil")).status)
		}
		for i := range 4 {
			assert.Equal(t, 200, patch(w.d1, w.d1.Token, host(fmt.Sprint("d1-", i))).status)
		}
		a := patch(w.d1, w.d1.Token, host("d1-more"))
		retryAfter(t, a.status, a.code, a.retryAfter)
		a = patch(w.d1, w.alice.Token, host("d1-owner"))
		assert.Equal(t, 429, a.status, "the owner's updates of the device count against the same device")
		assert.Equal(t, 200, patch(w.d2, w.d2.Token, host("d2-new")).status, "another device has its own budget")

		// Moves: two, then 429 for the third, though the update budget has refilled.
		time.Sleep(time.Minute)
		orgs := []string{w.alice.PersonalOrg, w.acme.ID}
		for i := range 2 {
			assert.Equal(t, 200, patch(w.d1, w.alice.Token, api.UpdateDeviceRequest{OrganizationID: &orgs[i%2]}).status, "move %d", i)
		}
		a = patch(w.d1, w.alice.Token, api.UpdateDeviceRequest{OrganizationID: &orgs[0]})
		assert.Greater(t, retryAfter(t, a.status, a.code, a.retryAfter), 10*time.Second, "a move waits for the moves' slow refill")
		assert.Equal(t, 200, patch(w.d1, w.d1.Token, host("d1-stays")).status, "updates that are no move still pass")
	})
}

// TestBadTokensThrottledPerSource: bad bearer tokens from one address cost its budget until it
// gets 429 (also for a good token: it is refused before its credential is checked); another
// address is not affected; after the Retry-After, the address is heard again.
func TestBadTokensThrottledPerSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.RateLimits.Sources = Limit{Rate: 1, Burst: 10} })
		w := e.newWorld()
		const attacker, other = "192.0.2.1:40000", "198.51.100.7:40000"
		var unauthorized int
		var last *httptest.ResponseRecorder
		for i := range 50 {
			// Distinct, well-formed but unknown token IDs: each is a store lookup.
			last = e.serveFrom(attacker, "GET", "/api/v1/users/me", fmt.Sprintf("%sid%d.secret", api.UserTokenPrefix, i))
			if last.Code == http.StatusUnauthorized {
				unauthorized++
			}
		}
		assert.Equal(t, 10, unauthorized, "the burst of failures is answered 401")
		var ae api.Error
		require.NoError(t, json.Unmarshal(last.Body.Bytes(), &ae))
		wait := retryAfter(t, last.Code, ae.Code, last.Header().Get("Retry-After"))
		assert.Equal(t, 429, e.serveFrom(attacker, "GET", "/api/v1/users/me", w.carol.Token).Code, "a throttled address is refused before its credential is looked at")
		assert.Equal(t, 429, e.serveFrom(attacker, "GET", "/api/v1/no-such-route", "").Code, "requests to no route count too")
		assert.Equal(t, 200, e.serveFrom(attacker, "GET", "/healthz", "").Code, "health checks are never limited")

		assert.Equal(t, 401, e.serveFrom(other, "GET", "/api/v1/users/me", "nxu_bad.secret").Code, "another address is not throttled")
		assert.Equal(t, 200, e.serveFrom(other, "GET", "/api/v1/users/me", w.carol.Token).Code)
		assert.Equal(t, 401, e.serveFrom("[2001:db8:1::1]:1", "GET", "/api/v1/users/me", "").Code)

		time.Sleep(wait)
		assert.Equal(t, 200, e.serveFrom(attacker, "GET", "/api/v1/users/me", w.carol.Token).Code, "heard again after Retry-After")
	})
}

// TestIPv6SourcesByPrefix: the addresses of one IPv6 /64 share a budget.
func TestIPv6SourcesByPrefix(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.RateLimits.Sources = Limit{Rate: 1, Burst: 3} })
		for i := range 3 {
			assert.Equal(t, 401, e.serveFrom(fmt.Sprintf("[2001:db8:1:2::%x]:1", i+1), "GET", "/api/v1/users/me", "").Code)
		}
		assert.Equal(t, 429, e.serveFrom("[2001:db8:1:2::ffff]:1", "GET", "/api/v1/users/me", "").Code, "same /64")
		assert.Equal(t, 401, e.serveFrom("[2001:db8:1:3::1]:1", "GET", "/api/v1/users/me", "").Code, "another /64")
	})
}

// TestForwardedForTrust: X-Forwarded-For is ignored by default (a client cannot dodge its limit
// by naming another address) and honoured only from a trusted proxy, where the right-most
// untrusted hop is the client (a forged left part does not help either).
func TestForwardedForTrust(t *testing.T) {
	const proxy = "203.0.113.5:443"
	throttle := func(e *env, xff string) {
		e.t.Helper()
		for range 5 {
			e.serveFrom(proxy, "GET", "/api/v1/users/me", "", "X-Forwarded-For", xff)
		}
		require.Equal(e.t, 429, e.serveFrom(proxy, "GET", "/api/v1/users/me", "", "X-Forwarded-For", xff).Code)
	}
	limits := func(c *Config) { c.RateLimits.Sources = Limit{Rate: 1, Burst: 5} }
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, limits)
		throttle(e, "192.0.2.1")
		assert.Equal(t, 429, e.serveFrom(proxy, "GET", "/api/v1/users/me", "", "X-Forwarded-For", "192.0.2.2").Code,
			"untrusted peer: X-Forwarded-For ignored, the peer is the source")
	})
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, limits, func(c *Config) {
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("10.0.0.0/8")}
		})
		throttle(e, "192.0.2.1")
		for _, c := range []struct {
			xff  []string
			want int
		}{
			{[]string{"192.0.2.2"}, 401},
			{[]string{"192.0.2.2, 10.1.2.3"}, 401},             // a second trusted hop is skipped
			{[]string{"192.0.2.2", "10.1.2.3"}, 401},           // also in separate headers
			{[]string{"192.0.2.2, 192.0.2.1"}, 429},            // forged left part: the proxy saw .1
			{[]string{"192.0.2.1", "10.1.2.3"}, 429},           // .1 behind two proxies
			{[]string{"garbage, 192.0.2.1"}, 429},              // garbage left of the client is ignored
			{[]string{"[2001:db8::1]:1234, 10.0.0.1:80"}, 401}, // ports and brackets
			{[]string{"192.0.2.1, garbage"}, 401},              // a garbled hop: its proxy is the source
			{nil, 401},                                         // no header: the proxy itself
		} {
			rec := e.serveFrom(proxy, "GET", "/api/v1/users/me", "", interleave("X-Forwarded-For", c.xff)...)
			assert.Equal(t, c.want, rec.Code, "X-Forwarded-For %q", c.xff)
		}
	})
}

func interleave(name string, values []string) []string {
	var h []string
	for _, v := range values {
		h = append(h, name, v)
	}
	return h
}

// TestLimiterMemoryBounded: a flood of bad tokens from distinct addresses, or of distinct
// invalid token IDs from one address, holds at most MaxKeys buckets, and no principal bucket
// at all (only authenticated principals get one).
func TestLimiterMemoryBounded(t *testing.T) {
	const maxKeys = 32
	e := newEnv(t, func(c *Config) { c.RateLimits.MaxKeys = maxKeys })
	for i := range 20 * maxKeys {
		remote := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}), 1).String()
		st := e.serveFrom(remote, "GET", "/api/v1/devices", fmt.Sprintf("%sdev%d.secret", api.DeviceTokenPrefix, i)).Code
		require.Contains(t, []int{401, 429}, st)
		require.LessOrEqual(t, e.coord.limits.sources.Len(), maxKeys)
	}
	for i := range 20 * maxKeys {
		e.serveFrom("192.0.2.9:1", "GET", "/api/v1/users/me", fmt.Sprintf("%sid%d.secret", api.UserTokenPrefix, i))
	}
	assert.LessOrEqual(t, e.coord.limits.sources.Len(), maxKeys)
	assert.Zero(t, e.coord.limits.requests.Len(), "failed authentications make no principal bucket")
}

// TestNormalNodeNotLimited: what a node does when it starts — register, open its stream,
// fetch relay credentials, publish its endpoints a few times, read the peer list and send a
// burst of ICE signals to each of its peers — stays within the default limits.
func TestNormalNodeNotLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		alice := e.newUser(e.uniq("alice"))
		org := e.newOrg(alice, e.uniq("fleet"), "")
		key := e.newRegKey(alice, org.ID, api.CreateRegKeyRequest{})
		const peers = 50
		var ps []device
		for i := range peers {
			ps = append(ps, e.register(key.Secret, "", fmt.Sprint("peer", i), newKey(t), 201))
		}
		node := e.register(key.Secret, "", "node", newKey(t), 201)
		for range 2 { // a reconnect
			s := e.openStream(devicePath(node.ID, "/events"), node.Token, "")
			s.nextOf(api.EventSync)
			s.close()
		}
		e.call("GET", relayPath(node.ID), node.Token, nil, 200, nil)
		e.call("GET", orgPath(org.ID, "/devices"), node.Token, nil, 200, nil)
		for i := range 5 {
			eps := []api.Endpoint{{Source: api.EndpointLocal, Address: fmt.Sprintf("192.168.1.10:%d", 51820+i)}}
			e.call("PATCH", devicePath(node.ID, ""), node.Token, api.UpdateDeviceRequest{Endpoints: &eps}, 200, nil)
		}
		// An offer and a handful of candidates per peer, a few hundred bytes each, at once.
		payload := []byte(strings.Repeat("c", 400))
		for _, p := range ps {
			for range 10 {
				e.call("POST", devicePath(p.ID, "/signal"), node.Token, api.SignalRequest{Payload: payload}, 204, nil)
			}
		}
		// And the peers answer.
		for _, p := range ps {
			for range 8 {
				e.call("POST", devicePath(node.ID, "/signal"), p.Token, api.SignalRequest{Payload: payload}, 204, nil)
			}
		}
	})
}

func TestLimitText(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Limit
	}{
		{"50/s,1000", Limit{50, 1000}},
		{"1/m,5", Limit{1.0 / 60, 5}},
		{"90/h,3", Limit{90.0 / 3600, 3}},
		{"65536/s,1048576", Limit{65536, 1 << 20}},
		{"0.5/s,1", Limit{0.5, 1}},
		{"off", Unlimited},
	} {
		var l Limit
		require.NoError(t, l.UnmarshalText([]byte(c.in)), c.in)
		assert.InDelta(t, c.want.Rate, l.Rate, 1e-12, c.in)
		assert.Equal(t, c.want.Burst, l.Burst, c.in)
		var again Limit
		require.NoError(t, again.UnmarshalText([]byte(l.String())), "round trip of %q: %q", c.in, l.String())
		assert.InDelta(t, l.Rate, again.Rate, 1e-9*math.Max(1, l.Rate), c.in)
	}
	for _, bad := range []string{"", "50", "50/s", "50/d,1", "-1/s,1", "0/s,1", "1/s,0", "1/s,x", "NaN/s,1", "Inf/s,1", "1/s,1,2"} {
		var l Limit
		assert.Error(t, l.UnmarshalText([]byte(bad)), "%q", bad)
	}
}

func TestConfigChecks(t *testing.T) {
	e := newEnv(t)
	for name, c := range map[string]Config{
		"short admin token": {AdminToken: "short-token"},
		"zero rate":         {RateLimits: RateLimits{Requests: Limit{Rate: 0, Burst: 5}}},
		"zero burst":        {RateLimits: RateLimits{Signals: Limit{Rate: 5}}},
		"tiny byte burst":   {RateLimits: RateLimits{SignalBytes: Limit{Rate: 1 << 20, Burst: 1024}}},
		"negative keys":     {RateLimits: RateLimits{MaxKeys: -1}},
		"invalid proxy":     {TrustedProxies: []netip.Prefix{{}}},
	} {
		c.Store = e.store
		_, err := New(t.Context(), c)
		assert.Error(t, err, name)
	}
	_, err := New(t.Context(), Config{Store: e.store, AdminToken: "short-token"})
	assert.ErrorContains(t, err, "fewer than 16")
	s, err := New(t.Context(), Config{Store: e.store, AdminToken: "sixteen-chars-ok",
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}})
	require.NoError(t, err)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, s.cfg.TrustedProxies, "IPv4-mapped prefixes are unmapped")
	require.NoError(t, s.Close())
}

// BenchmarkRequestUnderFlood measures the latency of another organization's request (a device
// reading its peer list) while one device floods the coordinator with the largest signals, which
// the limits answer 429 once its budget is spent; "idle" is the same request without the
// flood. Requests per principal are unlimited here, so that the measured loop itself is never
// throttled.
//
//	go test -run '^$' -bench BenchmarkRequestUnderFlood ./coordinator/
func BenchmarkRequestUnderFlood(b *testing.B) {
	for _, flood := range []bool{false, true} {
		name := "idle"
		if flood {
			name = "flood"
		}
		b.Run(name, func(b *testing.B) {
			e := newEnv(b, func(c *Config) { c.RateLimits.Requests = Unlimited })
			w := e.newWorld()
			big := api.SignalRequest{Payload: bytes.Repeat([]byte("s"), api.MaxSignalPayload)}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var floods, limited atomic.Int64
			if flood {
				for range 4 {
					wg.Go(func() {
						for ctx.Err() == nil {
							a := e.send("POST", devicePath(w.d2.ID, "/signal"), w.d1.Token, big)
							if a.status == http.StatusTooManyRequests {
								limited.Add(1)
							}
							floods.Add(1)
						}
					})
				}
			}
			path := orgPath(w.carol.PersonalOrg, "/devices")
			for b.Loop() {
				if a := e.send("GET", path, w.x1.Token, nil); a.err != nil || a.status != http.StatusOK {
					b.Fatalf("GET %s beside the flood: %+v", path, a)
				}
			}
			b.StopTimer()
			cancel()
			wg.Wait()
			if flood {
				b.ReportMetric(float64(limited.Load())/float64(max(floods.Load(), 1)), "flood-429-ratio")
			}
		})
	}
}
