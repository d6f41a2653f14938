// Package relay is the Nexodus relay: a standard STUN and TURN server (RFC 8489, RFC 8656) for
// devices that cannot reach each other directly, built on pion/turn.
//
// The relay forwards WireGuard ciphertext. A node behind a symmetric NAT allocates a relayed
// address here and its peers send their (already encrypted) WireGuard packets to that address;
// the relay never holds a key and never sees plaintext.
//
// # Credentials
//
// The relay shares a secret with the coordinator and accepts the time-limited credentials the
// coordinator mints for each device (the TURN REST scheme, see internal/turncred): the username
// is "<unix-expiry>:<device-id>" and the password base64(HMAC-SHA1(secret, username)). The relay
// keeps no user database; an expired credential, a password not derived from the secret and a
// realm other than [Config.Realm] are refused. Because the scheme is standard, coturn configured
// with use-auth-secret, static-auth-secret and the same realm can stand in for this relay.
//
// An allocation keeps working while its owner refreshes it; TURN refreshes are authenticated
// too, so once a credential expires its allocations end at their next refresh (at most the
// allocation lifetime, 10 minutes, later). Nodes fetch fresh credentials from the coordinator
// (GET /api/v1/devices/{id}/relay) before the old ones expire and allocate again.
//
// # STUN and NAT-type detection
//
// Every listener also answers STUN binding requests, so the relay is the deployment's STUN
// server. Telling a symmetric NAT (whose mapping changes with the destination) from a cone NAT
// needs two STUN addresses: give [Config.UDPListen] two entries (e.g. ":3478" and ":3479") and
// advertise both to devices (the coordinator's STUNServers, the example coordinator's
// -stun-servers flag).
//
// # Limits
//
// [Config.QuotaPerUser] bounds the live allocations of one device (the device ID in the
// credential's username, so minting fresh credentials does not reset it); a request over the
// quota is refused with 486 Allocation Quota Reached. [Config.BandwidthLimit] polices each
// allocation's traffic in each direction with a token bucket; datagrams over the limit are
// dropped, as a congested link would drop them, and counted in [Stats].
//
// Failed authentications (a malformed, expired or forged credential, a wrong realm) are
// counted per source address, an IPv4 address or an IPv6 /64, in a token bucket
// ([Config.AuthFailureRate], [Config.AuthFailureBurst]); once a source has spent its burst,
// its authenticated requests are refused without a credential check until the bucket
// refills, so a burst of guesses from one source is throttled while other sources are not.
// Over UDP a source address can be forged (with a nonce the forger got from its own
// address), so a forger able to spoof could throttle a victim's address; an operator who sees
// that can raise the burst, or turn the limit off with a negative rate.
//
// Allocations may not send to the unspecified, multicast, link-local or (unless the relay
// itself is on loopback) loopback addresses, nor to [Config.DeniedPeers], so the relay cannot
// be used to reach the network it runs in.
//
// Only UDP relayed addresses are offered (REQUESTED-TRANSPORT UDP, over any client transport:
// UDP, TCP or TLS); TCP allocations (RFC 6062) are refused, since WireGuard is datagrams.
package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/turn/v5"
	"golang.org/x/time/rate"

	"github.com/nexodus-sdk/nexodus/internal/ratelimit"
	"github.com/nexodus-sdk/nexodus/internal/sockbuf"
)

// DefaultRealm is the realm used when [Config.Realm] is empty.
const DefaultRealm = "nexodus"

// Errors. Configuration errors from [New] wrap ErrInvalidConfig.
var (
	// ErrInvalidConfig means a [Config] field is missing or inconsistent.
	ErrInvalidConfig = errors.New("relay: invalid config")
	// ErrQuotaExceeded is why an allocation over [Config.QuotaPerUser] is refused.
	ErrQuotaExceeded = errors.New("relay: allocation quota exceeded")
	// ErrUnsupportedTransport is why a TCP allocation (RFC 6062) is refused.
	ErrUnsupportedTransport = errors.New("relay: only UDP relayed addresses are offered")
	// ErrAddressFamily is why an allocation in the other IP family than [Config.PublicIP] is
	// refused.
	ErrAddressFamily = errors.New("relay: requested address family not served")
)

// Addrs are the addresses a relay actually listens on.
type Addrs struct {
	UDP []netip.AddrPort // in the order of Config.UDPListen
	TCP []netip.AddrPort // in the order of Config.TCPListen
	TLS netip.AddrPort   // zero without a TLS listener
}

// Stats are a relay's counters since it started.
type Stats struct {
	Allocations      int64 // live allocations
	AllocationsTotal int64 // allocations ever made
	// BytesRelayed and PacketsRelayed count the payload the allocations' relay sockets sent to
	// and received from peers.
	BytesRelayed   int64
	PacketsRelayed int64
	// PacketsDropped counts datagrams dropped for exceeding Config.BandwidthLimit.
	PacketsDropped int64
	// AuthFailures counts requests refused for their credentials: malformed, expired, wrong
	// realm or a message integrity that does not match (a forged password).
	AuthFailures int64
	// AuthThrottled counts requests refused, without checking their credentials, because
	// their source address had spent Config.AuthFailureBurst.
	AuthThrottled int64
	// QuotaRejections counts allocations refused for Config.QuotaPerUser.
	QuotaRejections int64
	// PeersRefused counts permissions refused for a denied peer address.
	PeersRefused int64
}

// Server is a running relay.
type Server struct {
	cfg       Config
	log       *slog.Logger
	turn      *turn.Server
	addrs     Addrs
	listeners []*trackedListener
	bindIP    netip.Addr

	mu      sync.Mutex
	closed  atomic.Bool    // set under mu, read without it
	perUser map[string]int // live allocations by device ID

	authLimit *ratelimit.Table[netip.Prefix] // failed authentications by source (policy.go)

	closeDone chan struct{} // closed when the first Close has returned
	settled   chan struct{} // after Close began: a count below reached zero

	active        atomic.Int64 // reads in progress on any socket the relay owns
	relays        atomic.Int64 // open relay sockets (live allocations)
	allocs        atomic.Int64
	bytes         atomic.Int64
	packets       atomic.Int64
	dropped       atomic.Int64
	authFails     atomic.Int64
	authThrottled atomic.Int64
	quotaRej      atomic.Int64
	peersRef      atomic.Int64
}

// New validates cfg, opens every listener and starts serving. ctx bounds the setup only; the
// relay runs until Close.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, perUser: map[string]int{},
		closeDone: make(chan struct{}), settled: make(chan struct{}, 1)}
	s.bindIP = cfg.RelayAddress
	authRate := rate.Limit(cfg.AuthFailureRate)
	if cfg.AuthFailureRate < 0 {
		authRate = rate.Inf
	}
	s.authLimit = ratelimit.New[netip.Prefix](authRate, cfg.AuthFailureBurst, maxAuthSources)

	var (
		pcs    []turn.PacketConnConfig
		lns    []turn.ListenerConfig
		opened []func() error
	)
	fail := func(err error) (*Server, error) {
		for _, c := range opened {
			_ = c()
		}
		return nil, err
	}
	gen := &relayGenerator{s: s}
	lc := net.ListenConfig{}
	for _, a := range cfg.UDPListen {
		pc, err := lc.ListenPacket(ctx, "udp", a)
		if err != nil {
			return fail(fmt.Errorf("relay: listen udp %s: %w", a, err))
		}
		opened = append(opened, pc.Close)
		sockbuf.Grow(pc, 4<<20)
		s.addrs.UDP = append(s.addrs.UDP, addrPort(pc.LocalAddr()))
		pcs = append(pcs, turn.PacketConnConfig{PacketConn: &listenConn{PacketConn: pc, s: s}, RelayAddressGenerator: gen, PermissionHandler: s.permit})
	}
	listenTCP := func(a string) (*trackedListener, error) {
		l, err := lc.Listen(ctx, "tcp", a)
		if err != nil {
			return nil, err
		}
		opened = append(opened, l.Close)
		tl := &trackedListener{Listener: l, s: s, conns: map[*trackedConn]struct{}{}}
		s.listeners = append(s.listeners, tl)
		return tl, nil
	}
	for _, a := range cfg.TCPListen {
		tl, err := listenTCP(a)
		if err != nil {
			return fail(fmt.Errorf("relay: listen tcp %s: %w", a, err))
		}
		s.addrs.TCP = append(s.addrs.TCP, addrPort(tl.Addr()))
		lns = append(lns, turn.ListenerConfig{Listener: tl, RelayAddressGenerator: gen, PermissionHandler: s.permit})
	}
	if cfg.TLSListen != "" {
		tl, err := listenTCP(cfg.TLSListen)
		if err != nil {
			return fail(fmt.Errorf("relay: listen tls %s: %w", cfg.TLSListen, err))
		}
		s.addrs.TLS = addrPort(tl.Addr())
		lns = append(lns, turn.ListenerConfig{Listener: tls.NewListener(tl, cfg.TLSConfig), RelayAddressGenerator: gen, PermissionHandler: s.permit})
	}

	ts, err := turn.NewServer(turn.ServerConfig{
		PacketConnConfigs:  pcs,
		ListenerConfigs:    lns,
		LoggerFactory:      pionLoggerFactory{log: s.log},
		Realm:              cfg.Realm,
		AuthHandler:        s.authenticate,
		QuotaHandler:       s.quotaAllows,
		AllocationLifetime: cfg.AllocationLifetime,
		EventHandler: turn.EventHandler{
			OnAuth: func(src, _ net.Addr, _, username, _ string, method string, verdict bool) {
				if !verdict {
					s.authFailed(src)
					s.log.Debug("turn request refused: message integrity does not match (wrong password)",
						"src", src.String(), "username", username, "method", method)
				}
			},
			OnAllocationCreated: func(src, _ net.Addr, proto, userID, _ string, relayAddr net.Addr, _ int) {
				s.allocs.Add(1)
				s.log.Debug("allocation created", "src", src.String(), "transport", proto, "device_id", userID, "relay_addr", relayAddr.String())
			},
			OnAllocationDeleted: func(src, _ net.Addr, proto, userID, _ string) {
				s.log.Debug("allocation deleted", "src", src.String(), "transport", proto, "device_id", userID)
			},
		},
	})
	if err != nil {
		return fail(fmt.Errorf("relay: start turn server: %w", err))
	}
	s.turn = ts
	s.log.Info("relay listening", "udp", s.addrs.UDP, "tcp", s.addrs.TCP, "tls", s.addrs.TLS,
		"public_ip", cfg.PublicIP, "realm", cfg.Realm)
	return s, nil
}

func addrPort(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	case *net.TCPAddr:
		ap = a.AddrPort()
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// Addrs returns the addresses the relay listens on, with the ports the system chose for ":0".
func (s *Server) Addrs() Addrs {
	a := s.addrs
	a.UDP = append([]netip.AddrPort(nil), a.UDP...)
	a.TCP = append([]netip.AddrPort(nil), a.TCP...)
	return a
}

// Stats returns the relay's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Allocations:      s.relays.Load(),
		AllocationsTotal: s.allocs.Load(),
		BytesRelayed:     s.bytes.Load(),
		PacketsRelayed:   s.packets.Load(),
		PacketsDropped:   s.dropped.Load(),
		AuthFailures:     s.authFails.Load(),
		AuthThrottled:    s.authThrottled.Load(),
		QuotaRejections:  s.quotaRej.Load(),
		PeersRefused:     s.peersRef.Load(),
	}
}

// maxAuthSources bounds the source addresses whose failed authentications are counted at once
// (a bucket that has refilled is dropped; beyond the bound, new addresses share one bucket), so
// a flood from many addresses takes no more memory than this many buckets.
const maxAuthSources = 1 << 16

// closeWait bounds how long Close waits for pion's goroutines to notice their sockets closed.
const closeWait = 10 * time.Second

// Close stops the relay: it closes every listener, connection and allocation and waits until
// the goroutines serving them have returned. Later calls wait for the first to finish and
// return an error wrapping net.ErrClosed.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		<-s.closeDone
		return fmt.Errorf("relay: close: %w", net.ErrClosed)
	}
	s.closed.Store(true)
	s.mu.Unlock()
	defer close(s.closeDone)

	var errs []error
	if err := s.turn.Close(); err != nil {
		errs = append(errs, fmt.Errorf("relay: close listeners: %w", err))
	}
	// pion closes listeners but not the connections they accepted.
	for _, l := range s.listeners {
		l.closeConns()
	}
	// pion's read loops close their allocations (and so the relay sockets) after their socket
	// fails; wait for that, so that no goroutine outlives Close.
	deadline := time.NewTimer(closeWait)
	defer deadline.Stop()
wait:
	for s.active.Load() > 0 || s.relays.Load() > 0 {
		select {
		case <-s.settled:
		case <-deadline.C:
			errs = append(errs, fmt.Errorf("relay: %d reads and %d relay sockets still open after %s",
				s.active.Load(), s.relays.Load(), closeWait))
			break wait
		}
	}
	s.log.Info("relay closed", "allocations_total", s.allocs.Load(), "bytes_relayed", s.bytes.Load())
	return errors.Join(errs...)
}

// beginRead and endRead count a read in progress on a socket of the relay; endRead wakes a
// Close that waits for the last one.
func (s *Server) beginRead() { s.active.Add(1) }

func (s *Server) endRead() {
	if s.active.Add(-1) == 0 && s.closed.Load() {
		s.settle()
	}
}

// settle tells a waiting Close that a count reached zero.
func (s *Server) settle() {
	select {
	case s.settled <- struct{}{}:
	default:
	}
}
