package nexodus

// SetReaddressHook makes f run while n rebuilds its tunnel after an address change, between
// closing the old data plane and building the new one.
func SetReaddressHook(n *Node, f func()) { n.testHookReaddress = f }
