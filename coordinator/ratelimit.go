package coordinator

// Rate limits: what each principal and each source address may do per second, the token
// buckets that count it (internal/ratelimit, bounded in memory), and the 429 answer with its
// Retry-After.

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/internal/ratelimit"
)

// Limit is a token bucket: Rate tokens per second refill it, up to Burst. Its zero value
// stands for the default of the field it is in.
type Limit struct {
	Rate  float64 // tokens per second; +Inf: no limit
	Burst int     // tokens at most, spent at once by a burst of requests
}

// Unlimited is a Limit that never refuses.
var Unlimited = Limit{Rate: math.Inf(1)}

// String is the text form UnmarshalText reads: "RATE/UNIT,BURST" with UNIT s, m or h (e.g.
// "50/s,1000", "1/m,5"), or "off" for no limit.
func (l Limit) String() string {
	if math.IsInf(l.Rate, 1) {
		return "off"
	}
	r, unit := l.Rate, "s"
	if r > 0 && r < 1 {
		r, unit = r*60, "m"
		if r < 1 {
			r, unit = r*60, "h"
		}
	}
	return strconv.FormatFloat(r, 'g', -1, 64) + "/" + unit + "," + strconv.Itoa(l.Burst)
}

// MarshalText implements encoding.TextMarshaler (for flag.TextVar).
func (l Limit) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler: see [Limit.String].
func (l *Limit) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "off" {
		*l = Unlimited
		return nil
	}
	bad := fmt.Errorf("limit %q is not RATE/UNIT,BURST (e.g. 50/s,1000 or 1/m,5) or off", s)
	r, burst, ok := strings.Cut(s, ",")
	if !ok {
		return bad
	}
	num, unit, ok := strings.Cut(r, "/")
	per := map[string]float64{"s": 1, "m": 60, "h": 3600}[unit]
	v, err := strconv.ParseFloat(num, 64)
	if !ok || per == 0 || err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return bad
	}
	n, err := strconv.Atoi(burst)
	if err != nil || n < 1 {
		return bad
	}
	*l = Limit{Rate: v / per, Burst: n}
	return nil
}

// RateLimits are the coordinator's rate limits (see [Config.RateLimits]). Each default is
// far above what a well-behaved node or user does, so it only stops floods. The counts are
// per coordinator process: behind a load balancer, each replica allows its own budget.
type RateLimits struct {
	// Requests limits every authenticated request of one user (whatever token or external
	// identity), one device or one registration key; the admin token is not limited. Default
	// 100/s, burst 1000: a node makes a few requests a minute once settled (endpoint updates,
	// relay credentials, stream reconnects) plus its signals, and a CLI or web session a few
	// per second.
	Requests Limit
	// Signals limits the signals one device sends. Default 50/s, burst 1000: a node starting
	// ICE with a peer sends an offer or answer and a handful of candidates (about 10 signals),
	// so the burst covers a node starting with about 100 peers at once.
	Signals Limit
	// SignalBytes limits the payload bytes of the signals one device sends. Default 64 KiB/s,
	// burst 1 MiB: ICE signals are a few hundred bytes each. The burst must be at least
	// api.MaxSignalPayload.
	SignalBytes Limit
	// DeviceUpdates limits the updates (PATCH) of one device, by itself or its owner; each
	// appends an event to its organization's log. Default 1/s, burst 30: a node publishes its
	// endpoints when its network changes, a few times at start.
	DeviceUpdates Limit
	// Moves limits the moves of one device to another organization; each appends events to two
	// logs and makes the device's stream send the new organization's whole peer list. Default
	// 1/min, burst 5.
	Moves Limit
	// Sources limits, per source address (an IPv4 address or an IPv6 /64, see
	// [Config.TrustedProxies]), requests without a valid credential: every failed
	// authentication and every request to no route. Once it is spent, every request from that
	// address gets 429 before its credential is checked, so keep it above what many
	// well-behaved clients behind one NAT fail at together. Default 1/s, burst 30: nodes fail
	// to authenticate only after their device was deleted. /healthz and /readyz are not limited,
	// so probes are never refused.
	Sources Limit
	// MaxKeys is how many buckets each limit keeps (one per principal or source address seen
	// recently; a refilled bucket is dropped). Beyond it, new keys share one bucket, so a flood
	// of distinct addresses or principals takes no more memory (about 200 bytes a bucket).
	// Default 65536: raise it above the number of devices active at once.
	MaxKeys int
}

// DefaultRateLimits returns the limits a zero RateLimits stands for.
func DefaultRateLimits() RateLimits {
	var rl RateLimits
	_ = rl.setDefaults() // the defaults are valid
	return rl
}

// setDefaults fills in the default of every limit left at its zero value and checks them.
func (rl *RateLimits) setDefaults() error {
	for _, f := range []struct {
		name string
		l    *Limit
		def  Limit
	}{
		{"Requests", &rl.Requests, Limit{100, 1000}},
		{"Signals", &rl.Signals, Limit{50, 1000}},
		{"SignalBytes", &rl.SignalBytes, Limit{64 << 10, 1 << 20}},
		{"DeviceUpdates", &rl.DeviceUpdates, Limit{1, 30}},
		{"Moves", &rl.Moves, Limit{1.0 / 60, 5}},
		{"Sources", &rl.Sources, Limit{1, 30}},
	} {
		if *f.l == (Limit{}) {
			*f.l = f.def
		}
		if f.l.Rate <= 0 || math.IsNaN(f.l.Rate) || !math.IsInf(f.l.Rate, 1) && f.l.Burst < 1 {
			return fmt.Errorf("coordinator: RateLimits.%s %v: want a positive rate and burst, or Unlimited", f.name, *f.l)
		}
	}
	if !math.IsInf(rl.SignalBytes.Rate, 1) && rl.SignalBytes.Burst < api.MaxSignalPayload {
		return fmt.Errorf("coordinator: RateLimits.SignalBytes burst %d is below api.MaxSignalPayload (%d): the largest signal could never pass", rl.SignalBytes.Burst, api.MaxSignalPayload)
	}
	if rl.MaxKeys < 0 {
		return fmt.Errorf("coordinator: RateLimits.MaxKeys %d is negative", rl.MaxKeys)
	}
	if rl.MaxKeys == 0 {
		rl.MaxKeys = 1 << 16
	}
	return nil
}

// limiters holds the token buckets of every limit.
type limiters struct {
	requests      *ratelimit.Table[string] // by principalKey
	signals       *ratelimit.Table[string] // by device ID
	signalBytes   *ratelimit.Table[string] // by device ID
	deviceUpdates *ratelimit.Table[string] // by device ID
	moves         *ratelimit.Table[string] // by device ID
	sources       *ratelimit.Table[netip.Prefix]
}

// rateOf is l's rate for package rate, whose "no limit" is rate.Inf rather than +Inf.
func (l Limit) rateOf() rate.Limit {
	if math.IsInf(l.Rate, 1) {
		return rate.Inf
	}
	return rate.Limit(l.Rate)
}

func newLimiters(rl RateLimits) *limiters {
	table := func(l Limit) *ratelimit.Table[string] {
		return ratelimit.New[string](l.rateOf(), l.Burst, rl.MaxKeys)
	}
	return &limiters{
		requests: table(rl.Requests), signals: table(rl.Signals), signalBytes: table(rl.SignalBytes),
		deviceUpdates: table(rl.DeviceUpdates), moves: table(rl.Moves),
		sources: ratelimit.New[netip.Prefix](rl.Sources.rateOf(), rl.Sources.Burst, rl.MaxKeys),
	}
}

// rateLimitedError is a 429: the domain error and how long until the request would pass.
type rateLimitedError struct {
	err   *Error // Kind ErrRateLimited
	after time.Duration
}

func (e *rateLimitedError) Error() string { return e.err.Error() }
func (e *rateLimitedError) Unwrap() error { return e.err }

func rateLimited(wait time.Duration, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	secs := retryAfterSeconds(wait)
	if wait == rate.InfDuration {
		msg += ": the request is larger than the limit's burst"
	} else {
		msg += fmt.Sprintf(": retry in %ds", secs)
	}
	return &rateLimitedError{err: &Error{Kind: ErrRateLimited, Msg: msg}, after: wait}
}

// retryAfterSeconds is a wait in whole seconds, rounded up, at least 1.
func retryAfterSeconds(wait time.Duration) int64 {
	if wait >= rate.InfDuration || wait > 24*time.Hour {
		return int64(24 * time.Hour / time.Second)
	}
	return max(1, int64((wait+time.Second-1)/time.Second))
}

// setRetryAfter sets the Retry-After header of a rate-limited answer.
func setRetryAfter(w http.ResponseWriter, err error) {
	var rle *rateLimitedError
	if errors.As(err, &rle) {
		w.Header().Set("Retry-After", strconv.FormatInt(retryAfterSeconds(rle.after), 10))
	}
}

// take takes n tokens of key from each table in turn, all or none.
func take(now time.Time, key string, n []int, tables ...*ratelimit.Table[string]) (time.Duration, int) {
	var undos []func()
	for i, t := range tables {
		wait, undo := t.Take(key, n[i], now)
		if wait > 0 {
			for _, u := range undos {
				u()
			}
			return wait, i
		}
		undos = append(undos, undo)
	}
	return 0, -1
}

// principalKey names the bucket of p's requests; admin requests are not limited ("").
func principalKey(p Principal) string {
	switch p.Kind {
	case KindUser:
		return "user:" + p.UserID
	case KindDevice:
		return "device:" + p.DeviceID
	case KindRegKey:
		return "regkey:" + p.RegKeyID
	}
	return ""
}

// authenticate authenticates r, charging a failure to its source address; an address whose
// failures are spent gets 429 before its credential is looked at.
func (s *Server) authenticate(r *http.Request) (Principal, error) {
	src := sourceKey(s.clientAddr(r))
	now := s.limitNow()
	if wait := s.limits.sources.Wait(src, 1, now); wait > 0 {
		return Principal{}, rateLimited(wait, "too many failed authentications from this address")
	}
	p, err := s.auth.Authenticate(r)
	if errors.Is(err, ErrUnauthorized) {
		s.limits.sources.Take(src, 1, now) // refused either way: 401 now, 429 next time
	}
	return p, err
}

// limitUnauthenticated charges a request without a credential (to no route, or to a route
// that authenticates by other means, such as a sign-in callback) to its source address.
func (s *Server) limitUnauthenticated(r *http.Request) error {
	if wait, _ := s.limits.sources.Take(sourceKey(s.clientAddr(r)), 1, s.limitNow()); wait > 0 {
		return rateLimited(wait, "too many requests without a credential from this address")
	}
	return nil
}

// limitRequest charges an authenticated request to its principal.
func (s *Server) limitRequest(p Principal) error {
	key := principalKey(p)
	if key == "" {
		return nil
	}
	if wait, _ := s.limits.requests.Take(key, 1, s.limitNow()); wait > 0 {
		return rateLimited(wait, "too many requests with this %s credential", p.Kind)
	}
	return nil
}

// limitSignal charges a signal of size payload bytes to the sending device.
func (s *Server) limitSignal(deviceID string, size int) error {
	l := s.limits
	wait, which := take(s.limitNow(), deviceID, []int{1, size}, l.signals, l.signalBytes)
	switch which {
	case 0:
		return rateLimited(wait, "too many signals from this device")
	case 1:
		return rateLimited(wait, "too many signal bytes from this device")
	}
	return nil
}

// limitDeviceUpdate charges an update of a device (and a move, when it is one) to the device.
func (s *Server) limitDeviceUpdate(deviceID string, move bool) error {
	l := s.limits
	tables, n := []*ratelimit.Table[string]{l.deviceUpdates}, []int{1}
	if move {
		tables, n = append(tables, l.moves), append(n, 1)
	}
	wait, which := take(s.limitNow(), deviceID, n, tables...)
	switch which {
	case 0:
		return rateLimited(wait, "too many updates of this device")
	case 1:
		return rateLimited(wait, "too many moves of this device")
	}
	return nil
}

// checkLimits checks RateLimits and TrustedProxies and fills in their defaults.
func (c *Config) checkLimits() error {
	if err := c.RateLimits.setDefaults(); err != nil {
		return err
	}
	proxies := make([]netip.Prefix, 0, len(c.TrustedProxies))
	for _, p := range c.TrustedProxies {
		if !p.IsValid() {
			return errors.New("coordinator: TrustedProxies holds an invalid prefix")
		}
		if p.Addr().Is4In6() { // addresses are compared unmapped
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		proxies = append(proxies, p.Masked())
	}
	c.TrustedProxies = proxies
	return nil
}

// limitNow is the clock of the buckets: Config.Now as it is, keeping time.Now's monotonic
// reading (s.now converts to UTC, which drops it), so a wall-clock step neither refills nor
// drains a bucket.
func (s *Server) limitNow() time.Time { return s.cfg.Now() }
