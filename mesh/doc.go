// Package mesh is the data plane of the Nexodus SDK: a WireGuard node that lives entirely inside
// the process. It runs wireguard-go (golang.zx2c4.com/wireguard/device) on a gVisor netstack
// instead of a TUN device, so an application joins the mesh without root, kernel module or
// network configuration, and talks to its peers with net.Conn, net.Listener and net.PacketConn
// (DialContext, Listen, ListenPacket).
//
// # One socket
//
// A Mesh owns exactly one UDP socket, and its own conn.Bind (not wireguard-go's StdNetBind)
// reads and writes it. Everything a node sends or receives on the underlay goes through it:
// WireGuard messages, and — through Config.OnPacket and Mesh.WriteTo — STUN, ICE connectivity
// checks and TURN traffic of the NAT-traversal layer. Sharing the socket is what makes NAT
// traversal work: the NAT mapping that STUN discovers and ICE validates is the very mapping
// WireGuard then uses. The Bind demultiplexes by content (see classify): WireGuard messages
// have a type byte of 1-4, three zero bytes and a fixed size (or a minimum one for transport
// data); everything else goes to OnPacket.
//
// # Endpoints keyed by public key
//
// wireguard-go thinks of a peer's endpoint as an address. This package configures every peer
// with an endpoint that is the peer's public key, and the Bind resolves it to an address at
// each send from the peer's path state. A peer's path can therefore change — LAN address,
// public (server-reflexive) address, relay — by a call to SetPeerPath, or by the peer roaming,
// without reconfiguring wireguard-go and without interrupting its session.
//
// Path selection: while a peer has no confirmed path, its packets (the handshake, in
// practice) go to every address it published; the first address from which wireguard-go
// accepts a packet of the peer becomes its path. SetPeerPath pins a path explicitly. If the peer
// later shows up at another address (an authenticated packet from there), the path follows it,
// as WireGuard's own roaming would.
//
// To keep wireguard-go's roaming from replacing the key endpoint with a bare address, the Bind
// identifies the sending peer of every WireGuard message before wireguard-go does: responses,
// cookie replies and transport messages by the receiver index (which this node allocated and
// the Bind saw go out), initiations by decrypting the initiator's static key. Messages from a
// peer's current path carry the peer's key endpoint; messages from elsewhere carry an
// "observed" endpoint that is bound to the peer too, and that the Bind turns into the peer's
// new path only once wireguard-go has authenticated a packet from there (it then sends through
// it). Spoofed packets thus cannot move a path.
//
// # Relay routes
//
// A peer that cannot be reached on the socket (ICE selected a TURN-relayed pair) gets a relay
// route: SetPeerRelay(pub, send) makes the Bind hand each of the peer's WireGuard messages to
// send instead of writing them to the socket, and InjectPacket hands the peer's messages that
// arrived through the relay to wireguard-go. Injected messages get a pseudo source address
// (relayAddr: the peer key's first 8 bytes in the discard-only prefix 100::/64, port 0) that
// no socket packet can have, and are mapped to the peer's key endpoint only if the Bind
// identifies them as the peer's — wireguard-go then authenticates them as always. A relay route
// is left only explicitly, by SetPeerPath or SetPeerRelay(pub, nil): socket packets of the peer
// are still accepted meanwhile, but do not move its path. The relay forwards ciphertext only.
//
// # First packet
//
// A peer learned a moment ago must not cost a multi-second wait. When a handshake initiation
// arrives from a key that is not (yet) a peer — the other side learned about us first — the
// Bind keeps it for a few seconds, and replays it to wireguard-go as soon as the key is added,
// so the handshake completes at once instead of after the initiator's 5-second retry. When a
// peer is added and there is nothing to replay, one side (the smaller public key) starts the
// handshake immediately. Handshakes started by both sides at the same moment ("crossing") can
// wedge wireguard-go's handshake state, so the preferred side briefly holds the other side's
// initiation while its own is in flight, and replays it only if its own goes unanswered.
//
// # Independence
//
// Several Mesh values in one process share nothing: each has its own socket, device, netstack
// and logger. Close releases all of them and leaves no goroutine behind.
package mesh
