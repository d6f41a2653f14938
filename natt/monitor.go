// monitor.go holds the Monitor: NAT detection repeated on a timer, on interface changes and
// on request, and the fold of its results into what it reports.

package natt

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// MonitorConfig configures a Monitor.
type MonitorConfig struct {
	// Socket is the shared socket to probe through.
	Socket *Socket
	// Servers returns the STUN servers to query (at least two distinct ones), resolved by the
	// caller; it is called before every check, so the list may change while running.
	Servers func(ctx context.Context) ([]netip.AddrPort, error)
	// Interval between periodic checks; 0 means DefaultMonitorInterval.
	Interval time.Duration
	// InterfaceInterval is how often the host's interface addresses are compared with the last
	// seen set; a change (a laptop joining another network) triggers a check at once. 0 means
	// DefaultInterfaceInterval; negative disables the comparison.
	InterfaceInterval time.Duration
	// Timeout bounds one check; 0 means DefaultMonitorTimeout.
	Timeout time.Duration
	// OnChange is called, from the Monitor's goroutine, when a check's result differs from the
	// previous one (NATInfo.Equal), including the first successful check. It must not block
	// for long.
	OnChange func(old, cur NATInfo)
	// OnCheck, when set, is called from the Monitor's goroutine after every check, changed or
	// not, with its result or its error (no STUN server answered: UDP may be blocked), before
	// OnChange. It must not block for long.
	OnCheck func(cur NATInfo, err error)
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger

	// interfaces lists local addresses; tests replace it.
	interfaces func() []netip.Addr
}

// Monitor defaults.
const (
	DefaultMonitorInterval   = 2 * time.Minute
	DefaultInterfaceInterval = 5 * time.Second
	DefaultMonitorTimeout    = 10 * time.Second
)

// Monitor re-runs NAT detection periodically, when the host's addresses change, and on demand
// (Recheck), and reports changes through OnChange. The original system checked only at start
// and broke when a laptop moved networks; the Monitor notices while running.
type Monitor struct {
	cfg    MonitorConfig
	log    *slog.Logger
	kick   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	closed atomic.Bool

	mu      sync.Mutex
	cur     NATInfo
	lastErr error
}

// NewMonitor starts a Monitor; its first check runs at once. Close stops it.
func NewMonitor(cfg MonitorConfig) *Monitor {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultMonitorInterval
	}
	if cfg.InterfaceInterval == 0 {
		cfg.InterfaceInterval = DefaultInterfaceInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultMonitorTimeout
	}
	if cfg.interfaces == nil {
		cfg.interfaces = localAddrs
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Monitor{
		cfg:    cfg,
		log:    loggerOrDiscard(cfg.Logger).With("component", "natt.monitor"),
		kick:   make(chan struct{}, 1),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	m.kick <- struct{}{}
	go m.run(ctx)
	return m
}

// Recheck asks for a check as soon as possible (for example after the application learned of
// a network change). It does not wait for the result.
func (m *Monitor) Recheck() { wake(m.kick) }

// Current returns the last successful result (Type NATUnknown before the first) and the error of
// the last check, if it failed.
func (m *Monitor) Current() (NATInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cur, m.lastErr
}

// Close stops the Monitor and waits for its goroutine. A second Close returns an error wrapping
// net.ErrClosed.
func (m *Monitor) Close() error {
	if m.closed.Swap(true) {
		return errClosed("monitor")
	}
	m.cancel()
	<-m.done
	return nil
}

func (m *Monitor) run(ctx context.Context) {
	defer close(m.done)
	ticker := time.NewTicker(m.cfg.Interval)
	defer ticker.Stop()
	var ifaceC <-chan time.Time
	var ifaces []netip.Addr
	if m.cfg.InterfaceInterval > 0 {
		t := time.NewTicker(m.cfg.InterfaceInterval)
		defer t.Stop()
		ifaceC = t.C
		ifaces = sortedAddrs(m.cfg.interfaces())
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.kick:
		case <-ticker.C:
		case <-ifaceC:
			now := sortedAddrs(m.cfg.interfaces())
			if slices.Equal(now, ifaces) {
				continue
			}
			m.log.Info("local addresses changed; rechecking NAT", "addresses", now)
			ifaces = now
		}
		m.check(ctx)
		ticker.Reset(m.cfg.Interval)
	}
}

func (m *Monitor) check(parent context.Context) {
	ctx, cancel := context.WithTimeout(parent, m.cfg.Timeout)
	defer cancel()
	var info NATInfo
	servers, err := m.cfg.Servers(ctx)
	if err == nil {
		info, err = DetectNAT(ctx, m.cfg.Socket, servers)
	}
	if parent.Err() != nil {
		return // closing
	}
	m.mu.Lock()
	old := m.cur
	var changed bool
	m.cur, m.lastErr, changed = natStep(old, info, err)
	err = m.lastErr
	m.mu.Unlock()
	if m.cfg.OnCheck != nil {
		m.cfg.OnCheck(info, err)
	}
	if err != nil {
		m.log.Warn("NAT check failed", "err", err)
		return
	}
	if info.Type == NATUnknown {
		m.log.Debug("NAT type unknown: one STUN server answered", "reflexive", info.Reflexive)
	}
	if changed {
		m.log.Info("NAT changed", "type", info.Type, "reflexive", info.Reflexive,
			"was_type", old.Type, "was_reflexive", old.Reflexive)
		if m.cfg.OnChange != nil {
			m.cfg.OnChange(old, info)
		}
	}
}

// natStep folds one check's result (info, err) into the Monitor's state, old being the last
// successful result: it returns the new last result, the error to report, and whether the
// result is news for OnChange. One answering server (ErrNotEnoughServers with a reflexive
// address) counts as a result: the NAT type stays unknown, but the public address is worth
// publishing (deployments with a single STUN server are common).
func natStep(old, info NATInfo, err error) (cur NATInfo, lastErr error, changed bool) {
	if errors.Is(err, ErrNotEnoughServers) && info.Reflexive.IsValid() {
		err = nil
	}
	if err != nil {
		return old, err, false
	}
	return info, nil, !old.Equal(info)
}

func sortedAddrs(a []netip.Addr) []netip.Addr {
	a = slices.Clone(a)
	slices.SortFunc(a, func(x, y netip.Addr) int { return x.Compare(y) })
	return a
}
