// config.go holds the relay's configuration: the fields, their defaults and how New checks
// them.

package relay

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"time"
)

// Config configures a relay.
type Config struct {
	// Realm is the TURN realm; credentials for another realm are refused. Default "nexodus".
	Realm string
	// Secret is shared with the coordinator, which mints credentials from it. Required.
	Secret []byte
	// PublicIP is the IP announced as the relayed address of allocations: the relay's public
	// address. Defaults to RelayAddress when that is a specific address; required otherwise.
	PublicIP netip.Addr
	// RelayAddress is where allocations' relay sockets bind. Default: the unspecified address
	// of PublicIP's family (all interfaces).
	RelayAddress netip.Addr
	// MinRelayPort and MaxRelayPort restrict relay sockets to a port range (for firewalls).
	// Zero for both lets the system choose.
	MinRelayPort, MaxRelayPort uint16
	// UDPListen lists "ip:port" addresses to serve STUN and TURN on over UDP. Two addresses
	// (two ports) let devices detect a symmetric NAT.
	UDPListen []string
	// TCPListen lists "ip:port" addresses to serve STUN and TURN on over TCP, for devices whose
	// network blocks UDP.
	TCPListen []string
	// TLSListen, with TLSConfig, serves STUN and TURN over TLS ("turns:").
	TLSListen string
	TLSConfig *tls.Config
	// QuotaPerUser is the maximum number of live allocations of one device. Zero means no
	// limit.
	QuotaPerUser int
	// BandwidthLimit is the maximum bytes per second relayed by one allocation in each
	// direction (peer to client, client to peer). Zero means no limit.
	BandwidthLimit int64
	// DeniedPeers are networks allocations may not send to (in addition to the unspecified,
	// multicast and link-local addresses, and loopback unless PublicIP is a loopback address,
	// which are always refused). Operators add their private ranges here so that the relay
	// cannot be used to reach their internal network. PublicIP itself is always allowed, so
	// that two allocations of this relay can reach each other.
	DeniedPeers []netip.Prefix
	// AuthFailureRate and AuthFailureBurst limit the failed authentications of one source
	// address (an IPv4 address or an IPv6 /64): once AuthFailureBurst failures are spent, every
	// authenticated request from that address is refused (400, without checking its
	// credential) until the budget refills at AuthFailureRate per second. Defaults 1/s and 20:
	// a node fails only with a credential that expired or was minted from another secret.
	// A negative AuthFailureRate turns the limit off.
	AuthFailureRate  float64
	AuthFailureBurst int
	// AllocationLifetime is the default lifetime of an allocation without refresh. Default
	// 10 minutes (RFC 8656).
	AllocationLifetime time.Duration
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock credentials are checked against; nil means time.Now.
	Now func() time.Time
}

func (c *Config) normalize() error {
	if len(c.Secret) == 0 {
		return fmt.Errorf("%w: Secret is required", ErrInvalidConfig)
	}
	if c.Realm == "" {
		c.Realm = DefaultRealm
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if len(c.UDPListen) == 0 && len(c.TCPListen) == 0 && c.TLSListen == "" {
		return fmt.Errorf("%w: no listener (UDPListen, TCPListen or TLSListen)", ErrInvalidConfig)
	}
	if c.TLSListen != "" && (c.TLSConfig == nil || len(c.TLSConfig.Certificates) == 0 && c.TLSConfig.GetCertificate == nil && c.TLSConfig.GetConfigForClient == nil) {
		return fmt.Errorf("%w: TLSListen needs a TLSConfig with a certificate", ErrInvalidConfig)
	}
	c.PublicIP, c.RelayAddress = c.PublicIP.Unmap(), c.RelayAddress.Unmap()
	if !c.PublicIP.IsValid() {
		if !c.RelayAddress.IsValid() || c.RelayAddress.IsUnspecified() {
			return fmt.Errorf("%w: PublicIP is required unless RelayAddress is a specific address", ErrInvalidConfig)
		}
		c.PublicIP = c.RelayAddress
	}
	if c.PublicIP.IsUnspecified() || c.PublicIP.IsMulticast() || c.PublicIP.Zone() != "" {
		return fmt.Errorf("%w: PublicIP %s is not a unicast address", ErrInvalidConfig, c.PublicIP)
	}
	if !c.RelayAddress.IsValid() {
		if c.PublicIP.Is4() {
			c.RelayAddress = netip.IPv4Unspecified()
		} else {
			c.RelayAddress = netip.IPv6Unspecified()
		}
	}
	if c.RelayAddress.Is4() != c.PublicIP.Is4() {
		return fmt.Errorf("%w: RelayAddress %s and PublicIP %s are of different families", ErrInvalidConfig, c.RelayAddress, c.PublicIP)
	}
	if c.MinRelayPort > c.MaxRelayPort || (c.MinRelayPort == 0) != (c.MaxRelayPort == 0) {
		return fmt.Errorf("%w: relay port range %d-%d", ErrInvalidConfig, c.MinRelayPort, c.MaxRelayPort)
	}
	if c.QuotaPerUser < 0 {
		return fmt.Errorf("%w: QuotaPerUser %d is negative", ErrInvalidConfig, c.QuotaPerUser)
	}
	if c.BandwidthLimit < 0 {
		return fmt.Errorf("%w: BandwidthLimit %d is negative", ErrInvalidConfig, c.BandwidthLimit)
	}
	for _, p := range c.DeniedPeers {
		if !p.IsValid() {
			return fmt.Errorf("%w: invalid DeniedPeers prefix", ErrInvalidConfig)
		}
	}
	if c.AuthFailureRate == 0 {
		c.AuthFailureRate = 1
	}
	if c.AuthFailureBurst == 0 {
		c.AuthFailureBurst = 20
	}
	if c.AuthFailureBurst < 0 || math.IsNaN(c.AuthFailureRate) {
		return fmt.Errorf("%w: AuthFailureRate %v, AuthFailureBurst %d", ErrInvalidConfig, c.AuthFailureRate, c.AuthFailureBurst)
	}
	if c.AllocationLifetime < 0 {
		return fmt.Errorf("%w: AllocationLifetime %s is negative", ErrInvalidConfig, c.AllocationLifetime)
	}
	return nil
}
