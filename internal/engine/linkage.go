package engine

// FromNode returns the engine of a running *nexodus.Node, or nil. The root package sets it
// once at init; the test kit (package nexodustest) uses it to reach knobs that are not part of
// the public API, such as SetForceRelay, without the facade growing methods for tests.
var FromNode = func(node any) *Engine { return nil }

// SetForceRelay switches a running engine's NAT traversal to relayed pairs only (true) or back
// to every pair (false); sessions restart at once. A rebuilt data plane keeps the setting.
func (e *Engine) SetForceRelay(on bool) {
	e.mu.Lock()
	e.cfg.ForceRelay = on
	dp := e.dp
	e.mu.Unlock()
	dp.setRelayOnly(on)
}
