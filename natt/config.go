// config.go holds the Manager's configuration and its defaults.

package natt

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/nexodus-sdk/nexodus/key"
)

// Config configures a Manager.
type Config struct {
	// LocalKey is this node's WireGuard public key; key order decides ICE roles.
	LocalKey key.Key
	// Socket is the shared socket (required). The Manager is its only reader (Discover,
	// DetectNAT and a Monitor may share it: they do not read it). Close leaves it open.
	Socket *Socket
	// STUNServers are "host:port" STUN servers for server-reflexive candidates.
	STUNServers []string
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// Signal sends a signaling payload to a peer through the coordinator (required). It is
	// called from one goroutine per peer, in order; an error is logged and recovered from by
	// retransmission.
	Signal func(ctx context.Context, peerID string, payload []byte) error
	// OnPath is called when a peer's selected pair changes, and with the zero Path when the
	// path is lost. Calls for one peer are serialized; they must not block for long nor call
	// Close. No call is made after Close returns, nor, bar one racing call, after RemovePeer.
	// For a relayed path (p.Relayed()), the peer's WireGuard packets must go through p.Send.
	OnPath func(peerID string, peerKey key.Key, p Path)

	// TURN are the relays for relayed candidates (see also SetTURN). A session gathers relayed
	// candidates (a TURN allocation) only when a relay is likely needed: see SetLocalNAT and
	// SetPeerSymmetric — and when a session without them hears nothing from the peer (fast
	// fallback, see the package doc). ICE selects a relayed pair only when no direct pair works
	// in time, and while a peer is relayed it looks for a direct pair again (see
	// UpgradeInterval).
	TURN []TURNServer
	// OnRelayPacket receives the datagrams (not STUN) the peer sent over a relayed pair: the
	// root hands them to WireGuard (mesh.InjectPacket). It is called from one goroutine per
	// session; it must not block for long, and b is only valid during the call.
	OnRelayPacket func(peerID string, peerKey key.Key, b []byte)
	// OnTrouble, when set, is called when a peer's session stops working: its consent checks go
	// unanswered or no candidate pair works. The peer may be gone, or this host's own NAT
	// mapping may have changed; the root re-checks its NAT. It is called from the peer's
	// goroutine and must not block.
	OnTrouble func(peerID string)
	// RelayOnly gathers relayed candidates only (for tests, and for networks where nothing but
	// the relay works). It requires TURN servers.
	RelayOnly bool
	// UpgradeInterval is how often the controlling side of a relayed peer starts a new session
	// to look for a direct pair; the relayed path stays in use until the new session selects
	// a pair [45s, jittered]. The first look after the path became relayed comes sooner (5 s,
	// or UpgradeInterval if shorter).
	UpgradeInterval time.Duration

	// Host candidates: loopback addresses are left out unless IncludeLoopback; InterfaceFilter
	// (by interface name) and IPFilter further restrict them; IPv6 adds udp6 (udp4 only
	// otherwise).
	IncludeLoopback bool
	InterfaceFilter func(name string) bool
	IPFilter        func(netip.Addr) bool
	IPv6            bool

	// Timing; zero values take the defaults in brackets.
	KeepaliveInterval   time.Duration // consent checks on the selected pair [2s]
	DisconnectedTimeout time.Duration // no answer for this long: disconnected [5s]
	FailedTimeout       time.Duration // then failed after this much more [10s]
	CheckInterval       time.Duration // connectivity-check pacing while checking [100ms]
	OfferTimeout        time.Duration // first retransmission of an unanswered offer [3s]
	BackoffMin          time.Duration // first delay before restarting a failed session [500ms]
	BackoffMax          time.Duration // cap for restart and retransmission delays [30s]
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.KeepaliveInterval, 2*time.Second)
	def(&c.DisconnectedTimeout, 5*time.Second)
	def(&c.FailedTimeout, 10*time.Second)
	// A valid pair is nominated at the next check round: the pacing bounds how long that takes.
	// Each pair is still checked for pairCheckSpan (see maxBindingRequests).
	def(&c.CheckInterval, 100*time.Millisecond)
	def(&c.OfferTimeout, 3*time.Second)
	def(&c.BackoffMin, 500*time.Millisecond)
	def(&c.BackoffMax, 30*time.Second)
	def(&c.UpgradeInterval, 45*time.Second)
}
