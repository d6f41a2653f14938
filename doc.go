// Package nexodus lets a Go program join a private mesh network from inside its own process.
//
// A [Node] registers with a Nexodus coordinator using a registration key, brings up an
// in-process WireGuard device on a userspace TCP/IP stack (gVisor netstack), follows the
// coordinator's event stream to learn its organization's peers, and hands the program standard
// library values — [net.Conn], [net.Listener], [net.PacketConn], [*http.Client] — that reach the
// other devices of the organization. No root, no kernel module, no TUN device, no sidecar.
//
//	n := &nexodus.Node{ControlURL: "https://coord.example.com", AuthKey: key, Hostname: "api"}
//	defer n.Close()
//	ln, err := n.Listen("tcp", ":8080")          // reachable by every peer at api:8080
//	conn, err := n.Dial(ctx, "tcp", "db:5432")   // a peer by hostname or tunnel IP
//
// Configure a Node through its fields before the first method call; it starts lazily (Up, Dial,
// Listen and ListenPacket start it) and exactly once. With StateDir set the node keeps its
// WireGuard key and device identity there, and a restart comes back with the same tunnel
// addresses; without it the node is ephemeral and removes itself from the coordinator on Close.
//
// Several Nodes may run in one process; they share nothing.
//
// When the coordinator is unreachable the data plane keeps working with the last peers the node
// knew, and the node reconnects with backoff and resumes the event stream where it left off.
// When the coordinator cuts the node off for good — its device, organization or user deleted,
// its token refused — the coordinator says why on the event stream (or in its answer to a
// reconnect), and the node drops its peers and stops: [Node.Done] closes and [Node.Err] says
// why ([ErrDeviceRemoved], itself wrapped by [ErrOrganizationDeleted] and [ErrUserDeleted],
// or [ErrCredentialRevoked]; all wrap [ErrCutOff]).
package nexodus
