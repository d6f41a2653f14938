package storetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// waitFor is how long the suite waits for something that should happen promptly.
const waitFor = 10 * time.Second

var errBoom = errors.New("boom")

func testRollback(t *testing.T, h *harness) {
	s, _ := h.new(t)
	world(t, s)
	before := read(t, s, func(ctx context.Context, tx store.Tx) (int64, error) { return tx.LatestRevision(ctx) })

	// fn's own error: everything it did is discarded and the error comes back unchanged.
	err := try(s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.CreateUser(ctx, user("x1", t0)); err != nil {
			return err
		}
		if err := tx.CreateOrganization(ctx, org("ox", "x1", 9)); err != nil {
			return err
		}
		if err := tx.AddMember(ctx, store.Membership{OrganizationID: "o1", UserID: "u3", Role: "member", JoinedAt: t0}); err != nil {
			return err
		}
		if err := tx.CreateDevice(ctx, device("dx", "o1", "u1", 9)); err != nil {
			return err
		}
		if err := tx.SetInvitationStatus(ctx, "none", "x"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("SetInvitationStatus missing: %v", err)
		}
		if _, err := tx.AppendEvent(ctx, store.Event{OrganizationID: "o1", Type: "x", CreatedAt: t0}); err != nil {
			return err
		}
		if err := tx.DeleteOrganization(ctx, "o2"); err != nil {
			return err
		}
		return fmt.Errorf("after the writes: %w", errBoom)
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Tx returned %v, want the function's error", err)
	}
	checkUntouched(t, s, before)

	// A failing store call whose error fn returns rolls back the earlier writes of the same Tx.
	err = try(s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.CreateUser(ctx, user("x1", t0)); err != nil {
			return err
		}
		return tx.CreateUser(ctx, store.User{ID: "x2", Username: "name-u1", CreatedAt: t0})
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Tx returned %v, want ErrConflict", err)
	}
	checkUntouched(t, s, before)

	// A failed call does not poison the transaction: fn may handle the error, go on and commit.
	// (The domain layer relies on this, e.g. "create, and on conflict read the existing row".)
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.CreateUser(ctx, store.User{ID: "x3", Username: "name-u1", CreatedAt: t0}); !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("duplicate CreateUser: %v, want ErrConflict", err)
		}
		if err := tx.CreateDevice(ctx, device("dy", "nope", "u1", 9)); err == nil {
			return errors.New("CreateDevice in a missing organization succeeded")
		}
		if _, err := tx.GetUserByUsername(ctx, "name-u1"); err != nil {
			return err
		}
		return tx.CreateUser(ctx, user("x4", t0))
	})
	got := read(t, s, func(ctx context.Context, tx store.Tx) ([]store.User, error) { return tx.ListUsers(ctx) })
	equalIDs(t, "users after a Tx that recovered from a failed call",
		ids(got, func(u store.User) string { return u.ID }), []string{"u1", "x4", "u2", "u3"})
	wantErrTx(t, s, store.ErrNotFound, "the failed CreateDevice left nothing", func(ctx context.Context, tx store.Tx) error {
		_, err := tx.GetDevice(ctx, "dy")
		return err
	})
}

// checkUntouched verifies that the world fixture is exactly as world left it.
func checkUntouched(t *testing.T, s store.Store, rev int64) {
	t.Helper()
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.GetUser(ctx, "x1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("user of a rolled-back Tx: GetUser err = %v, want ErrNotFound", err)
		}
		if _, err := tx.GetOrganization(ctx, "ox"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("organization of a rolled-back Tx: err = %v, want ErrNotFound", err)
		}
		if _, err := tx.GetMember(ctx, "o1", "u3"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("membership of a rolled-back Tx: err = %v, want ErrNotFound", err)
		}
		if _, err := tx.GetDevice(ctx, "dx"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("device of a rolled-back Tx: err = %v, want ErrNotFound", err)
		}
		if _, err := tx.GetOrganization(ctx, "o2"); err != nil {
			t.Errorf("organization deleted by a rolled-back Tx: %v", err)
		}
		if m, err := tx.ListMembers(ctx, "o2"); err != nil || len(m) != 1 {
			t.Errorf("members of o2 after a rolled-back delete = %v, %v", m, err)
		}
		if got, err := tx.LatestRevision(ctx); err != nil || got != rev {
			t.Errorf("LatestRevision after a rolled-back append = %d, %v; want %d", got, err, rev)
		}
		if evs, err := tx.ListEvents(ctx, "o1", "", 0, 0); err != nil || len(evs) != 0 {
			t.Errorf("events of a rolled-back Tx = %v, %v", evs, err)
		}
		return nil
	})
}

func testContextCanceled(t *testing.T, h *harness) {
	s, _ := h.new(t)
	world(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	err := s.Tx(ctx, func(tx store.Tx) error {
		called = true
		return tx.CreateUser(ctx, user("x1", t0))
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Tx with a canceled context returned %v, want context.Canceled", err)
	}
	_ = called // an engine may or may not call fn; what matters is that nothing commits

	// Canceled while fn runs: the transaction must not commit.
	ctx, cancel = context.WithCancel(context.Background())
	err = s.Tx(ctx, func(tx store.Tx) error {
		if err := tx.CreateUser(ctx, user("x2", t0)); err != nil {
			return err
		}
		cancel()
		return nil
	})
	if err == nil {
		t.Errorf("Tx whose context was canceled before commit returned nil")
	}
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		for _, id := range []string{"x1", "x2"} {
			if _, err := tx.GetUser(ctx, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("user %s of a canceled Tx: err = %v, want ErrNotFound", id, err)
			}
		}
		return nil
	})
}

// waitNotified fails unless ch delivers within waitFor.
func waitNotified(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
		t.Fatalf("%s: no notification within %v", what, waitFor)
	}
}

// notPending fails if ch has a value ready now.
func notPending(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Errorf("%s: unexpected notification", what)
	default:
	}
}

func appendEvent(ctx context.Context, tx store.Tx, org string) error {
	_, err := tx.AppendEvent(ctx, store.Event{OrganizationID: org, Type: "x", Data: []byte(`{}`), CreatedAt: t0})
	return err
}

func testSubscribe(t *testing.T, h *harness) {
	s, _ := h.new(t)
	world(t, s)
	ch1, cancel1 := s.Subscribe()
	defer cancel1()
	ch2, cancel2 := s.Subscribe()
	defer cancel2()
	notPending(t, ch1, "new subscription")

	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.CreateUser(ctx, user("x1", t0)) })
	notPending(t, ch1, "after a Tx that appended no event")

	do(t, s, func(ctx context.Context, tx store.Tx) error { return appendEvent(ctx, tx, "o1") })
	waitNotified(t, ch1, "subscriber 1 after a committed AppendEvent")
	waitNotified(t, ch2, "subscriber 2 after a committed AppendEvent")

	// Nobody reading must not block writers; pending wake-ups coalesce.
	for i := 0; i < 20; i++ {
		do(t, s, func(ctx context.Context, tx store.Tx) error { return appendEvent(ctx, tx, []string{"o1", "o2"}[i%2]) })
	}
	waitNotified(t, ch1, "after many commits")
	if n := len(ch1); n > 1 {
		t.Errorf("%d notifications pending, want at most 1 (coalesced)", n)
	}
	waitNotified(t, ch2, "subscriber 2 after many commits")

	// After cancel nothing more arrives, a second cancel is harmless, and others still hear.
	for len(ch1) > 0 {
		<-ch1
	}
	cancel1()
	cancel1()
	do(t, s, func(ctx context.Context, tx store.Tx) error { return appendEvent(ctx, tx, "o1") })
	waitNotified(t, ch2, "remaining subscriber after another subscriber canceled")
	notPending(t, ch1, "canceled subscription")

	// A subscription taken after events were appended hears only later commits.
	ch3, cancel3 := s.Subscribe()
	defer cancel3()
	notPending(t, ch3, "subscription taken after earlier commits")
	do(t, s, func(ctx context.Context, tx store.Tx) error { return appendEvent(ctx, tx, "o2") })
	waitNotified(t, ch3, "late subscriber")
}

func testSubscribeRollback(t *testing.T, h *harness) {
	s, _ := h.new(t)
	world(t, s)
	ch, cancel := s.Subscribe()
	defer cancel()

	err := try(s, func(ctx context.Context, tx store.Tx) error {
		if err := appendEvent(ctx, tx, "o1"); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Tx returned %v, want errBoom", err)
	}
	notPending(t, ch, "after a rolled-back AppendEvent")

	// A failed commit-time append (missing organization) that fn returns: no notification either.
	err = try(s, func(ctx context.Context, tx store.Tx) error { return appendEvent(ctx, tx, "nope") })
	if err == nil {
		t.Errorf("AppendEvent to a missing organization succeeded")
	}
	notPending(t, ch, "after a failed AppendEvent")

	// The subscription still works afterwards.
	do(t, s, func(ctx context.Context, tx store.Tx) error { return appendEvent(ctx, tx, "o1") })
	waitNotified(t, ch, "after a committed AppendEvent")
}

// parallel runs fn(g) in n goroutines and returns when all are done.
func parallel(n int, fn func(g int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start // line everyone up so the transactions really overlap
			fn(g)
		}()
	}
	close(start)
	wg.Wait()
}

func testConcurrentConflicts(t *testing.T, h *harness) {
	s, _ := h.new(t)
	world(t, s)
	const goroutines, addrs = 8, 10
	type result struct {
		org, addr string
		err       error
	}
	results := make([][]result, goroutines)
	parallel(goroutines, func(g int) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
		defer cancel()
		orgID := []string{"o1", "o2"}[g%2] // four goroutines compete in each organization
		for i := 0; i < addrs; i++ {
			d := device(fmt.Sprintf("g%d-%d", g, i), orgID, "u1", 0)
			d.TunnelIPv4 = fmt.Sprintf("100.64.7.%d", i)
			d.TunnelIPv6 = fmt.Sprintf("fd00:7::%x:%x", g, i) // unique: only IPv4 collides
			err := s.Tx(ctx, func(tx store.Tx) error { return tx.CreateDevice(ctx, d) })
			results[g] = append(results[g], result{orgID, d.TunnelIPv4, err})
		}
	})
	wins := map[string]int{}
	for _, rs := range results {
		for _, r := range rs {
			switch {
			case r.err == nil:
				wins[r.org+" "+r.addr]++
			case errors.Is(r.err, store.ErrConflict):
			default:
				t.Errorf("CreateDevice %s in %s: %v (want nil or ErrConflict)", r.addr, r.org, r.err)
			}
		}
	}
	for _, o := range []string{"o1", "o2"} {
		for i := 0; i < addrs; i++ {
			key := fmt.Sprintf("%s 100.64.7.%d", o, i)
			if wins[key] != 1 {
				t.Errorf("%s: %d winners, want exactly 1", key, wins[key])
			}
		}
		devs := read(t, s, func(ctx context.Context, tx store.Tx) ([]store.Device, error) { return tx.ListDevices(ctx, o) })
		if len(devs) != addrs {
			t.Errorf("ListDevices %s: %d devices, want %d", o, len(devs), addrs)
		}
	}
}

// testConcurrentReadModifyWrite is the IPAM pattern: read which addresses are taken, then take
// the first free one, in one Tx. Serialized (or engine-retried) transactions all succeed with
// distinct addresses; an engine that let two of them read the same snapshot and both commit
// fails here.
func testConcurrentReadModifyWrite(t *testing.T, h *harness) {
	s, _ := h.new(t)
	world(t, s)
	const goroutines, each = 8, 5
	errs := make([]error, goroutines)
	parallel(goroutines, func(g int) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
		defer cancel()
		for i := 0; i < each && errs[g] == nil; i++ {
			errs[g] = s.Tx(ctx, func(tx store.Tx) error {
				devs, err := tx.ListDevices(ctx, "o1")
				if err != nil {
					return err
				}
				taken := map[string]bool{}
				for _, d := range devs {
					taken[d.TunnelIPv4] = true
				}
				n := 1
				for taken[fmt.Sprintf("100.64.9.%d", n)] {
					n++
				}
				d := device(fmt.Sprintf("g%d-%d", g, i), "o1", "u1", 0)
				d.TunnelIPv4 = fmt.Sprintf("100.64.9.%d", n)
				d.TunnelIPv6 = fmt.Sprintf("fd00:9::%x", n)
				return tx.CreateDevice(ctx, d)
			})
		}
	})
	for g, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", g, err)
		}
	}
	devs := read(t, s, func(ctx context.Context, tx store.Tx) ([]store.Device, error) { return tx.ListDevices(ctx, "o1") })
	if len(devs) != goroutines*each {
		t.Fatalf("%d devices, want %d", len(devs), goroutines*each)
	}
	seen := map[string]bool{}
	for _, d := range devs {
		if seen[d.TunnelIPv4] {
			t.Errorf("address %s allocated twice", d.TunnelIPv4)
		}
		seen[d.TunnelIPv4] = true
	}
	for n := 1; n <= goroutines*each; n++ {
		if !seen[fmt.Sprintf("100.64.9.%d", n)] {
			t.Errorf("address 100.64.9.%d skipped: allocations were not serialized", n)
		}
	}
}

func testConcurrentEvents(t *testing.T, h *harness) {
	s, _ := h.new(t)
	world(t, s)
	ch, cancelSub := s.Subscribe()
	defer cancelSub()
	const goroutines, each = 8, 20
	revsByG := make([][]int64, goroutines)
	errs := make([]error, goroutines)
	parallel(goroutines, func(g int) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
		defer cancel()
		for i := 0; i < each && errs[g] == nil; i++ {
			errs[g] = s.Tx(ctx, func(tx store.Tx) error {
				rev, err := tx.AppendEvent(ctx, store.Event{OrganizationID: []string{"o1", "o2"}[g%2], Type: "x",
					Data: []byte(fmt.Sprintf(`{"g":%d,"i":%d}`, g, i)), CreatedAt: t0})
				if err == nil {
					revsByG[g] = append(revsByG[g], rev)
				}
				return err
			})
		}
	})
	for g, err := range errs {
		if err != nil {
			t.Fatalf("goroutine %d: %v", g, err)
		}
	}
	var all []int64
	for g, rs := range revsByG {
		for i := 1; i < len(rs); i++ {
			if rs[i] <= rs[i-1] {
				t.Errorf("goroutine %d saw revisions %v: not increasing", g, rs)
				break
			}
		}
		all = append(all, rs...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	for i := 1; i < len(all); i++ {
		if all[i] == all[i-1] {
			t.Fatalf("revision %d assigned twice", all[i])
		}
	}
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		latest, err := tx.LatestRevision(ctx)
		if err != nil {
			return err
		}
		if latest != all[len(all)-1] {
			t.Errorf("LatestRevision = %d, want %d", latest, all[len(all)-1])
		}
		n := 0
		for _, o := range []string{"o1", "o2"} {
			evs, err := tx.ListEvents(ctx, o, "", 0, 0)
			if err != nil {
				return err
			}
			for i := 1; i < len(evs); i++ {
				if evs[i].Revision <= evs[i-1].Revision {
					t.Errorf("ListEvents %s not in revision order", o)
				}
			}
			n += len(evs)
		}
		if n != goroutines*each {
			t.Errorf("%d events stored, want %d", n, goroutines*each)
		}
		return nil
	})
	waitNotified(t, ch, "subscriber during concurrent appends")
}

// snapshot reads everything the world-plus fixture of testReopen stored.
func snapshot(t *testing.T, s store.Store) map[string]any {
	t.Helper()
	snap := map[string]any{}
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		put := func(key string, v any, e error) {
			if e != nil && err == nil {
				err = fmt.Errorf("%s: %w", key, e)
			}
			snap[key] = normalize(v)
		}
		v1, e := tx.ListUsers(ctx)
		put("users", v1, e)
		v2, e := tx.GetToken(ctx, "t1")
		put("token t1", v2, e)
		v3, e := tx.ListOrganizations(ctx)
		put("organizations", v3, e)
		for _, o := range []string{"o1", "o2"} {
			m, e := tx.ListMembers(ctx, o)
			put("members "+o, m, e)
			i, e := tx.ListInvitationsForOrganization(ctx, o)
			put("invitations "+o, i, e)
			k, e := tx.ListRegKeys(ctx, o)
			put("regkeys "+o, k, e)
			d, e := tx.ListDevices(ctx, o)
			put("devices "+o, d, e)
			ev, e := tx.ListEvents(ctx, o, "d1", 0, 0)
			put("events "+o, ev, e)
		}
		l, e := tx.LatestRevision(ctx)
		put("latest", l, e)
		p, e := tx.PrunedRevision(ctx)
		put("pruned", p, e)
		return err
	})
	return snap
}

func testReopen(t *testing.T, h *harness) {
	s, reopen := h.new(t)
	world(t, s)
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		steps := []error{
			tx.CreateToken(ctx, store.Token{ID: "t1", UserID: "u1", Description: "cli", SecretHash: []byte{1, 2, 3},
				ExpiresAt: ptr(at(time.Hour)), CreatedAt: at(time.Millisecond)}),
			tx.CreateInvitation(ctx, store.Invitation{ID: "i1", OrganizationID: "o1", UserID: "u3", Role: "member",
				InviterID: "u1", Status: "pending", ExpiresAt: at(time.Hour), CreatedAt: at(time.Microsecond)}),
			tx.CreateRegKey(ctx, store.RegKey{ID: "k1", OrganizationID: "o1", OwnerID: "u1", SecretHash: []byte("s"),
				SingleUse: true, ExpiresAt: ptr(at(time.Hour)), CreatedAt: t0}),
			tx.CreateRegKey(ctx, store.RegKey{ID: "k2", OrganizationID: "o2", OwnerID: "u2", SecretHash: []byte("s2"),
				Ephemeral: true, Used: true, CreatedAt: t0}),
			tx.CreateDevice(ctx, device("d1", "o1", "u1", 1)),
			tx.SetOrgRelays(ctx, orgRelays("o1", 5)),
			tx.CreateDevice(ctx, func() store.Device {
				d := device("d2", "o2", "u1", 1)
				d.ChildPrefixes, d.SymmetricNAT = []string{"10.0.0.0/8"}, true
				return d
			}()),
		}
		for _, err := range steps {
			if err != nil {
				return err
			}
		}
		for i := 0; i < 4; i++ {
			if _, err := tx.AppendEvent(ctx, store.Event{OrganizationID: []string{"o1", "o2"}[i%2],
				TargetDeviceID: []string{"", "d1"}[i/2], Type: "x", Data: []byte{byte(i)},
				CreatedAt: at(time.Duration(i) * time.Minute)}); err != nil {
				return err
			}
		}
		_, err := tx.PruneEvents(ctx, at(time.Minute))
		return err
	})
	before := snapshot(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = reopen(t)
	after := snapshot(t, s)
	for k, v := range before {
		equal(t, "after reopen: "+k, after[k], v)
	}
	equal(t, "relays after reopen", read(t, s, func(ctx context.Context, tx store.Tx) (store.OrgRelays, error) {
		return tx.GetOrgRelays(ctx, "o1")
	}), orgRelays("o1", 5))

	// Rules and sequences carry on where they were.
	wantErrTx(t, s, store.ErrConflict, "duplicate username after reopen", func(ctx context.Context, tx store.Tx) error {
		return tx.CreateUser(ctx, store.User{ID: "z", Username: "name-u1", CreatedAt: t0})
	})
	wantErrTx(t, s, store.ErrConflict, "duplicate address after reopen", func(ctx context.Context, tx store.Tx) error {
		return tx.CreateDevice(ctx, device("d9", "o1", "u1", 1))
	})
	rev := read(t, s, func(ctx context.Context, tx store.Tx) (int64, error) {
		return tx.AppendEvent(ctx, store.Event{OrganizationID: "o1", Type: "x", CreatedAt: t0})
	})
	if latest := before["latest"].(int64); rev <= latest {
		t.Errorf("AppendEvent after reopen = %d, want > %d", rev, latest)
	}
	ch, cancel := s.Subscribe()
	defer cancel()
	do(t, s, func(ctx context.Context, tx store.Tx) error { return appendEvent(ctx, tx, "o2") })
	waitNotified(t, ch, "subscriber on a reopened store")
}

func testClose(t *testing.T, h *harness) {
	s, _ := h.new(t)
	world(t, s)
	ch, cancel := s.Subscribe()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	cancel() // after Close: harmless
	cancel()
	notPending(t, ch, "subscription of a closed store")
	err := s.Tx(context.Background(), func(tx store.Tx) error {
		_, err := tx.GetUser(context.Background(), "u1")
		return err
	})
	if err == nil {
		t.Errorf("Tx after Close succeeded")
	}
	if err := s.Close(); err == nil {
		t.Errorf("second Close succeeded, want an error")
	}
	// Subscribing to a closed store must not panic or leak; the channel simply never fires.
	_, cancel = s.Subscribe()
	cancel()
}
