package coordinator

// The coordinator's configuration: its fields, their defaults, and the checks New makes once.

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// MinAdminTokenLength is the fewest characters [Config.AdminToken] may have: a bootstrap
// credential short enough to guess is none.
const MinAdminTokenLength = 16

// DefaultEventLogMaxBytes is the default of [Config.EventLogMaxBytes], 8 MiB: some eight
// thousand device events (each under a KiB) per organization.
const DefaultEventLogMaxBytes = 8 << 20

// Config configures a coordinator. The zero value of every field but Store is a sensible
// default.
type Config struct {
	// Store is the database. Required. Close does not close it.
	Store store.Store
	// AdminToken is the bootstrap admin credential, at least [MinAdminTokenLength] characters.
	// Empty disables the admin token.
	AdminToken string
	// MetricsToken, when set (at least [MinAdminTokenLength] characters), is the bearer token
	// GET /metrics (Prometheus) asks for. Empty: /metrics answers anyone who can reach it, so
	// keep it off public networks or set a token.
	MetricsToken string
	// Authenticator, when set, authenticates bearer tokens of other schemes (e.g. OIDC).
	Authenticator Authenticator
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// IPv4Pool is where organizations created without a CIDR get theirs. Default 100.64.0.0/10.
	IPv4Pool netip.Prefix
	// OrgPrefixLen is the size of the IPv4 block each such organization gets. Default 16.
	OrgPrefixLen int
	// InvitationTTL is how long an invitation stays valid by default. Default 7 days.
	InvitationTTL time.Duration
	// EventRetention is how long events are kept for stream resumption. Default 24h.
	EventRetention time.Duration
	// EventLogMaxBytes bounds each organization's event log by size as EventRetention bounds
	// it by age: the sweeper deletes an organization's oldest events while their data (the
	// events' JSON) adds up to more. A stream resuming from before a pruned event starts
	// from a sync. Default [DefaultEventLogMaxBytes]; negative is an error.
	EventLogMaxBytes int64
	// Heartbeat is the interval of comment lines on idle event streams. Default 15s.
	Heartbeat time.Duration
	// StreamWriteTimeout bounds each write to an event stream; a client that does not read is
	// dropped. Default 30s.
	StreamWriteTimeout time.Duration
	// EphemeralGrace is how long an ephemeral device may stay without a connected event stream
	// before it is deleted. Default 60s.
	EphemeralGrace time.Duration
	// SweepInterval is how often the background sweeper prunes old events and deletes
	// disconnected ephemeral devices. Default 10s.
	SweepInterval time.Duration
	// Now is the clock; nil means time.Now. (The coordinator's own tests run in
	// testing/synctest bubbles, where time.Now is virtual, rather than inject a clock.)
	Now func() time.Time

	// STUNServers are the "host:port" STUN servers devices are told to use (the relays' UDP
	// listeners; two ports on one host let devices detect a symmetric NAT).
	STUNServers []string
	// TURNServers are the TURN URLs devices are told to use, e.g.
	// "turn:198.51.100.10:3478?transport=udp", "turns:relay.example.com:5349?transport=tcp".
	// They need RelaySecret.
	TURNServers []string
	// RelaySecret is the secret shared with the relays; TURN credentials are minted from it.
	// Empty: devices get STUN servers only.
	RelaySecret []byte
	// RelayCredentialTTL is how long minted TURN credentials are valid. Default 12h. Devices
	// get fresh ones on their event stream when half of it has passed.
	RelayCredentialTTL time.Duration
	// SealKey, 32 random bytes, seals the secrets the coordinator must be able to read back
	// (organizations' relay secrets, which mint credentials by HMAC) before they are stored.
	// Empty: they are stored as given, protected only by access to the database. Secrets
	// stored so are sealed at the first start with a key (and, with SQLite, scrubbed from the
	// database files). Changing it makes secrets sealed under the old key unreadable until
	// they are set again; the error names the key that sealed them.
	SealKey []byte

	// RateLimits bounds what each principal and each source address may do per second; every
	// zero field is its default (see [RateLimits]). A request over a limit gets 429 with a
	// Retry-After header.
	RateLimits RateLimits
	// TrustedProxies are the networks of the reverse proxies (load balancers) in front of the
	// coordinator. A request whose TCP peer is in one of them is counted, for the per-address
	// limit, against the right-most address in X-Forwarded-For that is not; X-Forwarded-For is
	// ignored from every other peer. Empty (the default): it is never trusted.
	TrustedProxies []netip.Prefix

	// Console, when set, serves the web console with sign-in through OpenID providers, browser
	// sessions and the device authorization grant (see [ConsoleConfig]). Nil: users are made
	// by the admin token only.
	Console *ConsoleConfig
}

// setDefaults checks c and fills in the default of every field left at its zero value.
func (c *Config) setDefaults() error {
	if c.Store == nil {
		return errors.New("coordinator: Config.Store is required")
	}
	if n := utf8.RuneCountInString(c.AdminToken); n > 0 && n < MinAdminTokenLength {
		return fmt.Errorf("coordinator: the admin token has %d characters, fewer than %d: use a long random one (e.g. from head -c 24 /dev/urandom | base64)", n, MinAdminTokenLength)
	}
	if n := utf8.RuneCountInString(c.MetricsToken); n > 0 && n < MinAdminTokenLength {
		return fmt.Errorf("coordinator: the metrics token has %d characters, fewer than %d", n, MinAdminTokenLength)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if !c.IPv4Pool.IsValid() {
		c.IPv4Pool = netip.MustParsePrefix("100.64.0.0/10")
	}
	if !c.IPv4Pool.Addr().Is4() || c.IPv4Pool != c.IPv4Pool.Masked() {
		return fmt.Errorf("coordinator: IPv4Pool %s must be a masked IPv4 prefix", c.IPv4Pool)
	}
	if c.OrgPrefixLen == 0 {
		c.OrgPrefixLen = max(16, c.IPv4Pool.Bits())
	}
	if c.OrgPrefixLen < c.IPv4Pool.Bits() || c.OrgPrefixLen > 30 || c.OrgPrefixLen-c.IPv4Pool.Bits() > 20 {
		return fmt.Errorf("coordinator: OrgPrefixLen %d does not fit IPv4Pool %s (at most 2^20 blocks, at most /30)", c.OrgPrefixLen, c.IPv4Pool)
	}
	for _, d := range []struct {
		field *time.Duration
		def   time.Duration
	}{
		{&c.InvitationTTL, 7 * 24 * time.Hour},
		{&c.EventRetention, 24 * time.Hour},
		{&c.Heartbeat, 15 * time.Second},
		{&c.StreamWriteTimeout, 30 * time.Second},
		{&c.EphemeralGrace, 60 * time.Second},
		{&c.SweepInterval, 10 * time.Second},
	} {
		if *d.field <= 0 {
			*d.field = d.def
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.EventLogMaxBytes < 0 {
		return fmt.Errorf("coordinator: EventLogMaxBytes %d is negative", c.EventLogMaxBytes)
	}
	if c.EventLogMaxBytes == 0 {
		c.EventLogMaxBytes = DefaultEventLogMaxBytes
	}
	if err := c.checkLimits(); err != nil {
		return err
	}
	if err := c.checkConsole(); err != nil {
		return err
	}
	return c.checkRelays()
}

// checkRelays checks the relay fields and fills in their defaults.
func (c *Config) checkRelays() error {
	if c.RelayCredentialTTL < 0 {
		return fmt.Errorf("coordinator: RelayCredentialTTL %s is negative", c.RelayCredentialTTL)
	}
	if c.RelayCredentialTTL == 0 {
		c.RelayCredentialTTL = 12 * time.Hour
	}
	for _, s := range c.STUNServers {
		if host, port, err := net.SplitHostPort(s); err != nil || host == "" || port == "" {
			return fmt.Errorf("coordinator: STUN server %q is not host:port", s)
		}
	}
	for _, u := range c.TURNServers {
		if !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") || strings.ContainsAny(u, " \t\r\n") {
			return fmt.Errorf("coordinator: TURN server %q is not a turn: or turns: URL", u)
		}
	}
	if len(c.TURNServers) > 0 && len(c.RelaySecret) == 0 {
		return errors.New("coordinator: TURNServers need a RelaySecret to mint credentials with")
	}
	c.STUNServers = slices.Clone(c.STUNServers)
	c.TURNServers = slices.Clone(c.TURNServers)
	c.RelaySecret = slices.Clone(c.RelaySecret)
	return nil
}
