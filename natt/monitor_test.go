// monitor_test.go tests the Monitor in virtual time (testing/synctest) on a memNet: the first
// check at once, the periodic interval, interface changes, Recheck, the check timeout, and the
// fold of results (natStep).

package natt

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// monitorReport is one OnCheck or OnChange call.
type monitorReport struct {
	at     time.Duration // since the Monitor started
	change bool          // OnChange (else OnCheck)
	info   NATInfo
	err    error
}

// monitorRig is a Monitor on a memNet with two STUN servers, and what it reported. Its socket is
// bound to 10.0.0.1:5000, which the servers report back unless told otherwise: no NAT.
type monitorRig struct {
	mon    *Monitor
	s1, s2 *stunResponder
	start  time.Time
	fail   atomic.Bool // Servers fails

	mu      sync.Mutex
	reports []monitorReport
	ifaces  []netip.Addr
}

// newMonitorRig starts the Monitor, in a synctest bubble; tweak, when not nil, may change its
// configuration and the servers first.
func newMonitorRig(t *testing.T, tweak func(*monitorRig, *MonitorConfig)) *monitorRig {
	n := newMemNet()
	r := &monitorRig{ifaces: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}
	var a1, a2 netip.AddrPort
	r.s1, a1 = n.stunServer("192.0.2.1:3478")
	r.s2, a2 = n.stunServer("192.0.2.2:3478")
	cfg := MonitorConfig{
		Socket: n.socket(t, "10.0.0.1:5000"),
		Servers: func(context.Context) ([]netip.AddrPort, error) {
			if r.fail.Load() {
				return nil, errors.New("no servers")
			}
			return []netip.AddrPort{a1, a2}, nil
		},
		InterfaceInterval: -1,
		Logger:            testLogger(t),
		OnCheck:           func(cur NATInfo, err error) { r.report(monitorReport{info: cur, err: err}) },
		OnChange:          func(_, cur NATInfo) { r.report(monitorReport{change: true, info: cur}) },
		interfaces: func() []netip.Addr {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.ifaces
		},
	}
	if tweak != nil {
		tweak(r, &cfg)
	}
	r.start = time.Now()
	r.mon = NewMonitor(cfg)
	t.Cleanup(func() { _ = r.mon.Close() })
	return r
}

func (r *monitorRig) report(rep monitorReport) {
	rep.at = time.Since(r.start)
	r.mu.Lock()
	r.reports = append(r.reports, rep)
	r.mu.Unlock()
}

// checks returns the OnCheck (change false) or OnChange (change true) reports so far.
func (r *monitorRig) checks(change bool) []monitorReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []monitorReport
	for _, rep := range r.reports {
		if rep.change == change {
			out = append(out, rep)
		}
	}
	return out
}

// checkTimes returns when the checks reported.
func (r *monitorRig) checkTimes() []time.Duration {
	var out []time.Duration
	for _, rep := range r.checks(false) {
		out = append(out, rep.at)
	}
	return out
}

// symmetric makes the servers see two mappings.
func (r *monitorRig) symmetric() {
	r.s1.setMapping(fixed("198.51.100.7:40000"))
	r.s2.setMapping(fixed("198.51.100.7:40001"))
}

// sleepUntil advances virtual time to d after the Monitor started and waits for the bubble to
// settle.
func (r *monitorRig) sleepUntil(d time.Duration) {
	time.Sleep(time.Until(r.start.Add(d)))
	synctest.Wait()
}

func TestMonitorReportsChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newMonitorRig(t, func(_ *monitorRig, c *MonitorConfig) { c.Interval = time.Hour })
		synctest.Wait()
		changes := r.checks(true)
		require.Len(t, changes, 1, "the first check reports at once")
		assert.Equal(t, NATNone, changes[0].info.Type)
		assert.Zero(t, changes[0].at)

		// The laptop moves behind a symmetric NAT, and the application asks for a check.
		r.symmetric()
		r.mon.Recheck()
		synctest.Wait()
		changes = r.checks(true)
		require.Len(t, changes, 2)
		assert.Equal(t, NATSymmetric, changes[1].info.Type)
		cur, err := r.mon.Current()
		require.NoError(t, err)
		assert.Equal(t, NATSymmetric, cur.Type)
	})
}

// Checks run every Interval, counted from the last check: a Recheck moves the next one.
func TestMonitorChecksEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newMonitorRig(t, nil) // DefaultMonitorInterval
		const iv = DefaultMonitorInterval
		r.sleepUntil(2*iv + iv/2)
		r.mon.Recheck()
		r.sleepUntil(4 * iv)
		assert.Equal(t, []time.Duration{0, iv, 2 * iv, 2*iv + iv/2, 3*iv + iv/2}, r.checkTimes())
		assert.Len(t, r.checks(true), 1, "an unchanged result is no change")
	})
}

// A change of the host's addresses triggers a check at the next comparison; the same addresses
// do not.
func TestMonitorInterfaceChangeTriggersCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newMonitorRig(t, func(_ *monitorRig, c *MonitorConfig) {
			c.Interval = time.Hour
			c.InterfaceInterval = 0 // DefaultInterfaceInterval
		})
		const iv = DefaultInterfaceInterval
		r.sleepUntil(2*iv + iv/2)
		r.s1.setMapping(fixed("198.51.100.7:40000"))
		r.s2.setMapping(fixed("198.51.100.7:40000"))
		r.mu.Lock()
		r.ifaces = []netip.Addr{netip.MustParseAddr("10.1.2.3")}
		r.mu.Unlock()
		r.sleepUntil(10 * iv)
		assert.Equal(t, []time.Duration{0, 3 * iv}, r.checkTimes())
		changes := r.checks(true)
		require.Len(t, changes, 2)
		assert.Equal(t, NATEndpointIndependent, changes[1].info.Type)
		assert.Equal(t, netip.MustParseAddrPort("198.51.100.7:40000"), changes[1].info.Reflexive)
	})
}

// OnCheck hears every result, not only changes: a check that failed (which makes the root
// assume UDP may be blocked) must be followed by word that the NAT is as it was.
func TestMonitorOnCheckEveryResult(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newMonitorRig(t, func(_ *monitorRig, c *MonitorConfig) { c.Interval = time.Hour })
		synctest.Wait()
		r.fail.Store(true)
		r.mon.Recheck()
		synctest.Wait()
		_, err := r.mon.Current()
		require.Error(t, err, "Current after a failed check")
		r.fail.Store(false)
		r.mon.Recheck()
		synctest.Wait()

		checks := r.checks(false)
		require.Len(t, checks, 3)
		assert.NoError(t, checks[0].err)
		assert.Equal(t, NATNone, checks[0].info.Type)
		assert.Error(t, checks[1].err, "check without servers")
		assert.NoError(t, checks[2].err)
		assert.Equal(t, NATNone, checks[2].info.Type)
		assert.Len(t, r.checks(true), 1, "OnChange called for an unchanged result")
	})
}

// A check that waits for a silent server ends at Timeout. With one server answering, its
// public address is reported, the NAT type unknown; with none, the check fails.
func TestMonitorCheckTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newMonitorRig(t, func(r *monitorRig, c *MonitorConfig) {
			c.Interval = time.Hour
			r.s2.setSilent(true)
		})
		r.sleepUntil(DefaultMonitorTimeout)
		checks := r.checks(false)
		require.Len(t, checks, 1)
		assert.Equal(t, DefaultMonitorTimeout, checks[0].at)
		assert.NoError(t, checks[0].err, "one server answered")
		assert.Equal(t, NATUnknown, checks[0].info.Type)
		assert.Equal(t, netip.MustParseAddrPort("10.0.0.1:5000"), checks[0].info.Reflexive)
		assert.Len(t, r.checks(true), 1, "the public address is news")

		r.s1.setSilent(true)
		r.mon.Recheck()
		r.sleepUntil(2 * DefaultMonitorTimeout)
		checks = r.checks(false)
		require.Len(t, checks, 2)
		assert.Equal(t, 2*DefaultMonitorTimeout, checks[1].at)
		assert.ErrorIs(t, checks[1].err, ErrNotEnoughServers)
		cur, err := r.mon.Current()
		assert.ErrorIs(t, err, ErrNotEnoughServers)
		assert.Equal(t, checks[0].info.Reflexive, cur.Reflexive, "Current keeps the last result")
	})
}

func TestNATStep(t *testing.T) {
	public := netip.MustParseAddrPort("198.51.100.7:40000")
	none := NATInfo{Type: NATNone, Reflexive: netip.MustParseAddrPort("10.0.0.1:5000")}
	sym := NATInfo{Type: NATSymmetric, Reflexive: public}
	failed := errors.New("no servers")
	for _, tc := range []struct {
		name      string
		old, info NATInfo
		err       error
		cur       NATInfo
		fails     bool
		changed   bool
	}{
		{"first result", NATInfo{}, none, nil, none, false, true},
		{"same result", none, none, nil, none, false, false},
		{"moved", none, sym, nil, sym, false, true},
		{"failed", none, NATInfo{}, failed, none, true, false},
		{"one server answered", NATInfo{}, NATInfo{Reflexive: public}, ErrNotEnoughServers, NATInfo{Reflexive: public}, false, true},
		{"no server answered", none, NATInfo{}, ErrNotEnoughServers, none, true, false},
	} {
		cur, err, changed := natStep(tc.old, tc.info, tc.err)
		assert.Equal(t, tc.cur, cur, tc.name)
		assert.Equal(t, tc.fails, err != nil, "%s: err %v", tc.name, err)
		assert.Equal(t, tc.changed, changed, tc.name)
	}
}
