package nexodus

// SetRelayOnly makes every path of n go through a TURN relay, so that tests on one machine,
// where every direct path works, can exercise relayed paths.
func SetRelayOnly(n *Node) { n.relayOnly = true }
