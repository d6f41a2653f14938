// Package natlab builds a small internet out of Linux network namespaces for tests: a public
// segment, NAT gateways made with nftables, and hosts behind them that run real programs.
//
// # Topology
//
//	                   namespace <prefix>inet
//	           bridge br0: 198.51.100.1/24, 203.0.113.1/24
//	 ("the internet": one L2 segment carrying both documentation ranges)
//	    |                          |                           |
//	p-coord                    p-nat1                      p-nat2          (veth ends on br0)
//	    |                          |                           |
//	eth0 198.51.100.10         wan0 203.0.113.10           wan0 203.0.113.11
//	host "coord"               router "nat1"               router "nat2"
//	(public host)              nftables masquerade          nftables masquerade
//	                           ip_forward=1                 fully-random ...
//	                           bridge lan0 10.1.0.1/24      bridge lan0 10.2.0.1/24
//	                             |            |                  |
//	                           p-h1         p-h2               p-h3
//	                             |            |                  |
//	                           eth0         eth0               eth0
//	                           10.1.0.10    10.1.0.11          10.2.0.10
//	                           host "h1"    host "h2"          host "h3"
//
// Every box is its own network namespace named <prefix><name>, where the prefix is
// "nxl-<pid>-<random>-<lab number>-" (see [Lab.Prefix]). Public hosts take addresses from
// 198.51.100.0/24, NAT WAN sides from 203.0.113.0/24; both ranges are on-link on the public
// bridge, so every public address reaches every other directly. A NAT's LAN is a bridge "lan0"
// inside the router's own namespace with 10.N.0.1/24 (N counts NATs in the lab); hosts behind it
// get 10.N.0.10, .11, ... with their default route via 10.N.0.1. A NAT may itself sit on another
// NAT's LAN (double NAT). Veth pairs are created directly inside the namespaces (ip -n ... peer
// netns ...), so no interface ever appears in the host's own namespace, nothing touches the
// host's routes, sysctls or nftables ruleset, and interface names (eth0, wan0, lan0, br0, p-NAME)
// need only be unique within a lab's namespaces. IPv6 is disabled in every lab namespace and
// br_netfilter's bridge-nf-call-* sysctls are turned off there, so bridged traffic never meets
// a NAT's filter rules.
//
// # NAT behaviour
//
// Each router has one nftables table, "ip natlab":
//
//   - [Cone]: plain masquerade on wan0. Linux NAT keeps an existing mapping for a source
//     ip:port (and prefers the original port when it is free), so the mapping is
//     endpoint-independent; filtering is conntrack's, so only the exact remote ip:port a LAN
//     host has sent to may answer (address-and-port-dependent filtering, a "port-restricted
//     cone").
//   - [Symmetric]: masquerade fully-random; every new flow (new remote ip:port) gets a fresh
//     random port, so a STUN server sees a different mapping than a peer does.
//   - [BlockUDP]: like Cone, but forwarded outbound UDP is dropped; TCP still passes.
//   - [BlockPeerUDP]: like Cone, but forwarded outbound UDP to 203.0.113.0/24 (the other NATs'
//     WAN sides) is dropped: UDP to public hosts (STUN, the relay) passes, so the NAT type is
//     found and published, but no UDP gets through to a peer behind another NAT, nor back
//     (nothing it sent there made a mapping).
//
// For all kinds, forwarded packets from wan0 that are not part of an established flow are
// dropped, and so is every new packet addressed to the router itself from wan0 (like a home
// router's input policy). The latter matters for hole punching: a peer's first, unsolicited
// packet is dropped before conntrack confirms an entry for it, so it cannot occupy the tuple the
// router's own LAN host is about to use and force a different mapping.
//
// [NAT.FlushConntrack] deletes the router's conntrack table (over ctnetlink; no conntrack tool is
// needed) and [NAT.SetPortRange] restricts masquerade to a port range; together they force a
// mapping change while traffic flows.
//
// # Running programs
//
// [Host.Run] and [Host.Start] run commands with "ip netns exec". [Host.StartHelper] re-executes
// the current test binary as one of the small built-in UDP/TCP helpers ([HelperUDPEcho],
// [HelperUDPProbe], [HelperUDPStream], [HelperTCPProbe]); importing this package is enough, the
// helper runs from this package's init when the NATLAB_HELPER variable is set. [Host.Do],
// [Host.ListenPacket], [Host.Listen] and [Host.Dial] run Go code or open sockets inside a
// namespace from the test process itself.
//
// # Requirements and cleanup
//
// [New] skips the test, saying why, unless it runs as root with ip (iproute2) and nft (nftables)
// available and network namespaces can be created; with NATLAB_REQUIRE=1 in the environment it
// fails instead (for CI, where a skip would hide a broken lab). The lab registers t.Cleanup to
// kill its processes and delete every namespace it made (veths and bridges go with them), also
// when the test fails or panics. New also sweeps namespaces left behind by earlier test
// processes that died without cleaning up (their PID in the name no longer runs); [Sweep] does
// that on demand.
package natlab
