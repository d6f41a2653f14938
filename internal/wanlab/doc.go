// Package wanlab puts a wide-area path between two hosts of the NAT lab (internal/natlab): a
// round-trip time and a loss rate, made with NFQUEUE for kernels without netem. Queue serves
// one NFQUEUE from this process (standard-library netlink, golang.org/x/sys/unix); Path is the
// two hosts with a Queue on each one's INPUT; BenchmarkWAN measures kernel TCP and TCP through
// two meshes over it in the same run. Everything needs root and skips without it
// (NATLAB_REQUIRE=1 makes that a failure, as in the NAT lab).
package wanlab
