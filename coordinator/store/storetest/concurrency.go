package storetest

// Concurrent transactions: uniqueness under races, serialized read-modify-write, revisions.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// parallel runs fn(ctx, g) in n goroutines, lined up to start together so that their
// transactions really overlap, and returns when all are done.
func parallel(n int, fn func(ctx context.Context, g int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
			defer cancel()
			<-start
			fn(ctx, g)
		})
	}
	close(start)
	wg.Wait()
}

// parallelTx runs n goroutines of each transactions fn(ctx, tx, g, i), a goroutine stopping at
// its first error, and requires that none failed.
func parallelTx(t *testing.T, s store.Store, n, each int, fn func(ctx context.Context, tx store.Tx, g, i int) error) {
	t.Helper()
	errs := make([]error, n)
	parallel(n, func(ctx context.Context, g int) {
		for i := 0; i < each && errs[g] == nil; i++ {
			errs[g] = s.Tx(ctx, func(tx store.Tx) error { return fn(ctx, tx, g, i) })
		}
	})
	require.NoError(t, errors.Join(errs...))
}

func testConcurrentConflicts(t *testing.T, s store.Store, _ ReopenFunc) {
	const goroutines, addrs = 8, 10
	type result struct {
		org, addr string
		err       error
	}
	results := make([][]result, goroutines)
	parallel(goroutines, func(ctx context.Context, g int) {
		orgID := []string{"o1", "o2"}[g%2] // four goroutines compete in each organization
		for i := range addrs {
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
			if r.err == nil {
				wins[r.org+" "+r.addr]++
			} else {
				assert.ErrorIs(t, r.err, store.ErrConflict, "CreateDevice %s in %s", r.addr, r.org)
			}
		}
	}
	for _, o := range []string{"o1", "o2"} {
		for i := range addrs {
			key := fmt.Sprintf("%s 100.64.7.%d", o, i)
			assert.Equal(t, 1, wins[key], "%s: winners", key)
		}
		assert.Len(t, getOne(t, s, store.Tx.ListDevices, o), addrs, "devices of %s", o)
	}
}

// testConcurrentReadModifyWrite is the IPAM pattern: read which addresses are taken, then take
// the first free one, in one Tx. Serialized (or engine-retried) transactions all succeed with
// distinct addresses; an engine that let two of them read the same snapshot and both commit
// fails here.
func testConcurrentReadModifyWrite(t *testing.T, s store.Store, _ ReopenFunc) {
	const goroutines, each = 8, 5
	parallelTx(t, s, goroutines, each, func(ctx context.Context, tx store.Tx, g, i int) error {
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
	var got, want []string
	for i, d := range getOne(t, s, store.Tx.ListDevices, "o1") {
		got = append(got, d.TunnelIPv4)
		want = append(want, fmt.Sprintf("100.64.9.%d", i+1))
	}
	// Each took the next address: none twice, none skipped.
	assert.ElementsMatch(t, want, got, "addresses: allocations were not serialized")
	assert.Len(t, got, goroutines*each)
}

func testConcurrentEvents(t *testing.T, s store.Store, _ ReopenFunc) {
	ch, cancelSub := subscribe(s)
	defer cancelSub()
	const goroutines, each = 8, 20
	revsByG := make([][]int64, goroutines)
	parallelTx(t, s, goroutines, each, func(ctx context.Context, tx store.Tx, g, i int) error {
		rev, err := tx.AppendEvent(ctx, store.Event{OrganizationID: []string{"o1", "o2"}[g%2], Type: "x",
			Data: fmt.Appendf(nil, `{"g":%d,"i":%d}`, g, i), CreatedAt: t0})
		if err == nil {
			revsByG[g] = append(revsByG[g], rev)
		}
		return err
	})
	var all []int64
	for g, rs := range revsByG {
		assert.IsIncreasing(t, rs, "revisions seen by goroutine %d", g)
		all = append(all, rs...)
	}
	slices.Sort(all)
	require.Len(t, slices.Compact(slices.Clone(all)), len(all), "a revision assigned twice")
	assert.Equal(t, all[len(all)-1], readTx(t, s, store.Tx.LatestRevision), "LatestRevision")
	var stored []store.Event
	for _, o := range []string{"o1", "o2"} {
		evs := listEvents(t, s, o, "", 0, 0)
		assert.IsIncreasing(t, revs(evs), "revisions of %s", o)
		stored = append(stored, evs...)
	}
	assert.Len(t, stored, goroutines*each, "events stored")
	waitNotified(t, ch, "subscriber during concurrent appends")
}
