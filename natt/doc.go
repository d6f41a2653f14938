// Package natt is the NAT-traversal layer of the Nexodus SDK: STUN discovery, NAT-type
// detection, and one ICE agent (pion/ice) per peer, all running over the data plane's single
// UDP socket, so that the NAT mapping STUN discovers and ICE validates is the very mapping
// WireGuard then uses.
//
// natt imports none of the module's packages but the leaves key (WireGuard keys: key.Key
// names every peer's key in the API) and internal/sockbuf; the root package wires it to mesh and
// to the coordinator client.
//
// Every Close in the package (Manager, Monitor, Socket) is idempotent: the first call does the
// work, and every later one returns an error wrapping net.ErrClosed.
//
// # The shared socket
//
// natt does not own a socket. A Socket is a net.PacketConn whose writes go to a function (the
// mesh's WriteTo) and whose reads return what the owner of the real socket hands to Deliver
// (the mesh's OnPacket: every datagram that is not a WireGuard message). Only STUN messages
// are kept; the queue is bounded and drops, counting, when full. STUN responses to a Discover
// call in progress are routed to it by transaction ID before queueing, so Discover and NAT
// detection work while a Manager reads the Socket.
//
// # STUN and NAT type
//
// Discover sends a Binding request over the Socket and retransmits it per RFC 5389 (RTO
// 500 ms doubling, 7 requests, a final 16×RTO wait) until an answer or the context's end.
// DetectNAT asks two or more servers (differing in address or port) at once: different
// mappings mean a symmetric NAT (address-dependent mapping), equal ones an
// endpoint-independent NAT, or no NAT if the mapping is one of the socket's own addresses.
// A Monitor repeats detection periodically, whenever the host's interface addresses change,
// and on Recheck, and reports changes: a laptop that moves networks is noticed while running.
//
// # ICE
//
// A Manager runs one pion/ice agent per peer, all on one ice.UniversalUDPMux built on the
// Socket, so host and server-reflexive candidates and every connectivity and consent check use
// WireGuard's port. Host candidates are the socket's address, or, for a socket bound to an
// unspecified address, the interface addresses that pass the configured filters.
//
// Roles are fixed by key order: the peer with the lexicographically smaller WireGuard public
// key is the controlling agent, whoever offered. Each peer is an actor: one goroutine owns
// its agent and state and consumes, in order, signals from HandleSignal, events from pion's
// callbacks (through a non-blocking queue) and its timers. Signals go out through a second
// goroutine per peer, in order, so a slow coordinator never stalls ICE.
//
// # Sessions and signaling
//
// A session is one agent with one set of credentials, named by a random ID the offerer picks.
// Both sides offer when a peer is added (neither knows whether the other is there). Glare —
// two offers crossing — is resolved by role: the controlling side keeps its offer (and resends
// it at once), the controlled side drops its own and answers. Unanswered offers are resent
// with their candidates, with backoff, and replaced by a fresh session after a while. Messages
// of ended sessions are ignored; candidates that arrive before their session's offer or
// answer are held (bounded) until it does. Candidates trickle: each is signaled as pion
// gathers it, then end-of-candidates. See SignalMessage for the wire format; DecodeSignal is
// strict and fuzzed.
//
// # Paths
//
// When ICE selects a pair, OnPath reports it (Path: local and remote address and candidate
// types, and since when); the root then points the peer's WireGuard traffic at Path.Remote
// (mesh.SetPeerPath). While connected, pion's consent checks run on the pair every
// KeepaliveInterval. If they go unanswered the session is Disconnected: the path is reported
// lost (the zero Path) and a new session is scheduled after an exponential backoff (jittered,
// capped at BackoffMax), unless the old one recovers first; a Failed session is replaced the
// same way. A peer that is removed or shuts down sends "restart" for its session, so the other
// side notices at once rather than by consent failure. RestartAll starts new sessions with
// every peer at once, for network changes; working paths stay in use until the new sessions
// select theirs.
//
// Manager.Paths reports each peer's state: StateNew from AddPeer until its first session is
// offered, then offering, checking and connected; StateWaiting only once a session failed or
// ended, with Reason saying why (the reason stays through the retries, until one connects).
// A caller waiting for traversal to settle must treat new, offering and checking as undecided.
//
// # Relayed candidates
//
// With TURN servers configured (Config.TURN, replaced by SetTURN when the credentials are
// refreshed), a session gathers relayed candidates when a relay is likely needed: this host is
// behind a symmetric NAT, or its NAT type is unknown (not checked yet, or no STUN server
// answered: UDP may be blocked) — see SetLocalNAT —, the peer reported a symmetric NAT
// (SetPeerSymmetric), or the previous session with the peer found no direct pair. Other
// sessions make no TURN allocation, so relay load does not grow with the number of peers that
// connect directly, and a per-credential quota is left to the peers that need it; a session
// that connected directly while holding allocations it turned out not to need is replaced, its
// pair staying in use, by one without. pion allocates on each TURN server over UDP, TCP
// (transport=tcp, for networks that drop UDP) or TLS, on sockets of its own — not the shared
// one, which carries no TURN traffic: about one allocation per TURN URL per session that
// gathers. The TURN servers answer STUN too, so they also yield server-reflexive candidates,
// whether or not the session allocates. Type preferences (host > prflx > srflx > relay) make ICE select a
// working direct pair over a relayed one. A direct pair is nominated as soon as it is valid
// (no acceptance wait; checks are paced every CheckInterval, 100 ms); a relayed pair after
// 300 ms in a session that allocated up front (the direct pairs' chance), at once in one that
// follows a direct attempt that found nothing. RelayOnly gathers relayed candidates only (tests
// on 127.0.0.1, networks where only the relay works).
//
// A relayed pair (Path.Relayed: either candidate is relayed) is not reachable as an address on
// the shared socket. Its Path carries Send, which writes through the session's selected pair
// (pion's ice.Conn); the root gives it to mesh.SetPeerRelay. What the peer sends over the pair
// arrives in pion's data buffer, which one goroutine per session reads and hands to
// Config.OnRelayPacket (the root passes it to mesh.InjectPacket). Direct pairs never carry
// data through natt: the shared Socket keeps STUN only, and WireGuard reads and writes the
// socket itself.
//
// A relayed path lives as long as its session's agent (its TURN allocation). A session that is
// replaced while its relayed pair is in use — by a restart, RestartAll, SetTURN, or an
// upgrade attempt — is therefore kept open until the new session selects a pair, and for a
// few seconds more while the peer switches too; if the new session fails instead, the kept one
// becomes current again and nothing is reported. While a peer is relayed, the controlling side
// starts a new session to look for a direct pair, 5 s after the path became relayed and then
// every UpgradeInterval: the switch happens without the path ever being reported lost. Such
// upgrade sessions (and the answers to them) gather no relayed candidates: the kept session's
// allocation carries the traffic meanwhile, so a relayed peer does not allocate again at every
// look. If the TURN server dies, relayed sessions lose consent, report the zero Path and
// restart with backoff until the relay is back; peers with a direct path are not affected. The signaling format needs no change: relay candidates are
// ordinary candidate lines.
//
// # Fast fallback
//
// A session without relayed candidates never waits for ICE to fail before the relay is tried.
// Its direct pairs are looked at 300 ms after the checks got the peer's first candidate: if no
// pair has heard from the peer (no answer to a check, no check of the peer's), or none is valid
// 1.5 s in although some did, the session found no direct pair. The controlling side then offers
// a new session at once, which gathers relayed candidates and nominates a working relayed pair
// without waiting (its direct candidates are checked too, and win if they validate first); the
// controlled side records it, so that its answer to that offer gathers relayed candidates too.
// The first look for a direct pair after the path became relayed (see above) comes 5 s later
// rather than after UpgradeInterval, since the relay may have been chosen where a direct pair
// needed a moment longer; a look that hears nothing from the peer within 1.5 s ends, and the
// relayed session stays.
//
// Allocations: a peer that needs the relay holds one allocation per TURN URL (two, UDP and TCP,
// with the coordinator's usual list), two sets for a few seconds during a handover; peers that
// connect directly hold none once a direct session replaced the one that held them (10 s). A relay's per-device quota
// (relay.Config.QuotaPerUser) therefore bounds the number of relayed peers of a device to about
// quota/2; an allocation the relay refuses (486) leaves that session without relayed candidates
// for that URL, and a peer left with no pair at all retries once ICE failed, with backoff.
// Allocations are not shared between peers.
package natt
