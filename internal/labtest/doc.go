// Package labtest holds the end-to-end NAT-traversal tests of the SDK: the example binaries
// (coordinator, relay, nexctl, nxcat) run inside a NAT lab (package internal/natlab) of network
// namespaces and nftables NATs, and each case asserts both that data flows and which path type
// the nodes report.
//
// The tests need root and nftables; elsewhere they skip, saying why (with NATLAB_REQUIRE=1 they
// fail instead, as in CI). The binaries are built once per test run, only when the lab can run.
//
// Topology (every case builds its own lab; see world_test.go):
//
//	public segment (198.51.100.0/24 + 203.0.113.0/24)
//	  coord 198.51.100.10: coordinator :8080, STUN (and TURN) on :3478 and :3479
//	  NAT routers (203.0.113.x), kind per case, each with a LAN 10.N.0.0/24
//	    hosts 10.N.0.10, ... running nxcat nodes
//
// Nothing in this package is used outside its tests; only this file is not a _test.go file.
package labtest
