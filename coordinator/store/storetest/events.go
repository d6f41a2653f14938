package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func revs(evs []store.Event) []int64 {
	out := make([]int64, 0, len(evs))
	for _, e := range evs {
		out = append(out, e.Revision)
	}
	return out
}

func equalRevs(t *testing.T, what string, got []store.Event, want []int64) {
	t.Helper()
	g := revs(got)
	if len(g) != len(want) {
		t.Errorf("%s: got revisions %v, want %v", what, g, want)
		return
	}
	for i := range g {
		if g[i] != want[i] {
			t.Errorf("%s: got revisions %v, want %v", what, g, want)
			return
		}
	}
}

func testEvents(t *testing.T, h *harness) {
	s, _ := h.new(t)
	world(t, s)
	if got := read(t, s, func(ctx context.Context, tx store.Tx) (int64, error) { return tx.LatestRevision(ctx) }); got != 0 {
		t.Fatalf("LatestRevision of empty store = %d, want 0", got)
	}
	if got := read(t, s, func(ctx context.Context, tx store.Tx) (int64, error) { return tx.PrunedRevision(ctx) }); got != 0 {
		t.Fatalf("PrunedRevision of empty store = %d, want 0", got)
	}

	// Interleaved organizations and targets; revisions must increase across all of them.
	in := []store.Event{
		{OrganizationID: "o1", Type: "device.added", Data: []byte(`{"id":"d1"}`), CreatedAt: at(time.Second)},
		{OrganizationID: "o2", Type: "device.added", Data: []byte(`{"id":"d9"}`), CreatedAt: at(2 * time.Second)},
		{OrganizationID: "o1", TargetDeviceID: "d1", Type: "signal", Data: []byte{0, 1, 2, 0xff}, CreatedAt: at(3 * time.Second)},
		{OrganizationID: "o1", TargetDeviceID: "d2", Type: "signal", Data: []byte(`"for d2"`), CreatedAt: at(4 * time.Second)},
		{OrganizationID: "o1", Type: "device.removed", CreatedAt: at(5*time.Second + time.Microsecond)},
	}
	var got []int64
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		for i := range in {
			rev, err := tx.AppendEvent(ctx, in[i])
			if err != nil {
				return err
			}
			got = append(got, rev)
		}
		return nil
	})
	// A later transaction continues the sequence.
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		e := store.Event{OrganizationID: "o2", Type: "device.updated", Data: []byte(`{}`), CreatedAt: at(6 * time.Second)}
		rev, err := tx.AppendEvent(ctx, e)
		in = append(in, e)
		got = append(got, rev)
		return err
	})
	for i := range got {
		if got[i] <= 0 || (i > 0 && got[i] <= got[i-1]) {
			t.Fatalf("AppendEvent revisions %v are not positive and strictly increasing", got)
		}
		in[i].Revision = got[i]
	}
	latest := read(t, s, func(ctx context.Context, tx store.Tx) (int64, error) { return tx.LatestRevision(ctx) })
	if latest != got[len(got)-1] {
		t.Errorf("LatestRevision = %d, want %d", latest, got[len(got)-1])
	}

	list := func(org, target string, after int64, limit int) []store.Event {
		return read(t, s, func(ctx context.Context, tx store.Tx) ([]store.Event, error) {
			return tx.ListEvents(ctx, org, target, after, limit)
		})
	}
	all := list("o1", "d1", 0, 100)
	equalRevs(t, "ListEvents o1 for d1", all, []int64{got[0], got[2], got[4]})
	if len(all) == 3 {
		equal(t, "ListEvents record (targeted, binary data)", all[1], in[2])
		equal(t, "ListEvents record (no data)", all[2], in[4])
	}
	equalRevs(t, "ListEvents o1 untargeted", list("o1", "", 0, 100), []int64{got[0], got[4]})
	equalRevs(t, "ListEvents o1 for d2", list("o1", "d2", 0, 100), []int64{got[0], got[3], got[4]})
	equalRevs(t, "ListEvents o1 for unknown device", list("o1", "zz", 0, 100), []int64{got[0], got[4]})
	equalRevs(t, "ListEvents o2", list("o2", "", 0, 100), []int64{got[1], got[5]})
	equalRevs(t, "ListEvents o2 for d1 (targets never cross organizations)", list("o2", "d1", 0, 100), []int64{got[1], got[5]})
	equalRevs(t, "ListEvents after", list("o1", "d1", got[0], 100), []int64{got[2], got[4]})
	equalRevs(t, "ListEvents after a revision of another organization", list("o1", "d1", got[1], 100), []int64{got[2], got[4]})
	equalRevs(t, "ListEvents limit", list("o1", "d1", 0, 2), []int64{got[0], got[2]})
	equalRevs(t, "ListEvents after+limit", list("o1", "d2", got[0], 1), []int64{got[3]})
	equalRevs(t, "ListEvents limit 0 (no limit)", list("o1", "d1", 0, 0), []int64{got[0], got[2], got[4]})
	equalRevs(t, "ListEvents after the latest", list("o1", "d1", latest, 100), nil)
	equalRevs(t, "ListEvents unknown organization", list("nope", "", 0, 100), nil)
}

func testPruneEvents(t *testing.T, h *harness) {
	s, reopen := h.new(t)
	world(t, s)
	var r []int64
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		for i := 0; i < 6; i++ {
			o := []string{"o1", "o2"}[i%2]
			rev, err := tx.AppendEvent(ctx, store.Event{OrganizationID: o, Type: "x", CreatedAt: at(time.Duration(i) * time.Minute)})
			if err != nil {
				return err
			}
			r = append(r, rev)
		}
		return nil
	})
	prune := func(before time.Time) int64 {
		return read(t, s, func(ctx context.Context, tx store.Tx) (int64, error) { return tx.PruneEvents(ctx, before) })
	}
	pruned := func() int64 {
		return read(t, s, func(ctx context.Context, tx store.Tx) (int64, error) { return tx.PrunedRevision(ctx) })
	}
	if n := prune(at(-time.Hour)); n != 0 {
		t.Errorf("PruneEvents before everything deleted %d", n)
	}
	if p := pruned(); p != 0 {
		t.Errorf("PrunedRevision after pruning nothing = %d", p)
	}
	// Strictly before: the event at exactly 2 minutes stays. The cutoff is given in another zone.
	if n := prune(at(2 * time.Minute).In(time.UTC)); n != 2 {
		t.Errorf("PruneEvents deleted %d, want 2", n)
	}
	if p := pruned(); p != r[1] {
		t.Errorf("PrunedRevision = %d, want %d", p, r[1])
	}
	evs := read(t, s, func(ctx context.Context, tx store.Tx) ([]store.Event, error) {
		return tx.ListEvents(ctx, "o1", "", 0, 0)
	})
	equalRevs(t, "o1 after prune", evs, []int64{r[2], r[4]})
	evs = read(t, s, func(ctx context.Context, tx store.Tx) ([]store.Event, error) {
		return tx.ListEvents(ctx, "o2", "", 0, 0)
	})
	equalRevs(t, "o2 after prune", evs, []int64{r[3], r[5]})

	// Pruning everything keeps LatestRevision, and new revisions never reuse old numbers.
	if n := prune(at(time.Hour)); n != 4 {
		t.Errorf("PruneEvents deleted %d, want 4", n)
	}
	if p := pruned(); p != r[5] {
		t.Errorf("PrunedRevision = %d, want %d", p, r[5])
	}
	if l := read(t, s, func(ctx context.Context, tx store.Tx) (int64, error) { return tx.LatestRevision(ctx) }); l != r[5] {
		t.Errorf("LatestRevision after pruning everything = %d, want %d", l, r[5])
	}
	next := read(t, s, func(ctx context.Context, tx store.Tx) (int64, error) {
		return tx.AppendEvent(ctx, store.Event{OrganizationID: "o1", Type: "x", CreatedAt: at(-time.Hour)})
	})
	if next <= r[5] {
		t.Errorf("AppendEvent after pruning = %d, want > %d", next, r[5])
	}
	// Pruning goes by creation time, not revision: the back-dated newest event goes, and
	// PrunedRevision follows the highest revision deleted.
	if n := prune(at(-time.Minute)); n != 1 {
		t.Errorf("PruneEvents of the back-dated event deleted %d, want 1", n)
	}
	if p := pruned(); p != next {
		t.Errorf("PrunedRevision = %d, want %d", p, next)
	}

	// Both numbers survive a restart.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t)
	if p := pruned(); p != next {
		t.Errorf("PrunedRevision after reopen = %d, want %d", p, next)
	}
	if l := read(t, s, func(ctx context.Context, tx store.Tx) (int64, error) { return tx.LatestRevision(ctx) }); l != next {
		t.Errorf("LatestRevision after reopen = %d, want %d", l, next)
	}
}
