package coordinator

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// prunedRevision reads the store's PrunedRevision.
func (e *env) prunedRevision() int64 {
	e.t.Helper()
	ctx := context.Background()
	var rev int64
	require.NoError(e.t, e.store.View(ctx, func(tx store.Tx) (err error) {
		rev, err = tx.PrunedRevision(ctx)
		return err
	}))
	return rev
}

// TestEventLogSizeBound: the sweeper keeps an organization's log within EventLogMaxBytes by
// pruning its oldest events; a stream resuming from before the pruned range starts from a
// sync, one resuming after it gets exactly the events it missed; another organization's log
// within the bound keeps its events.
func TestEventLogSizeBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, func(c *Config) {
			c.SweepInterval, c.Heartbeat, c.EventLogMaxBytes = time.Hour, time.Hour, 4096
		})
		alice, bob := e.newUser("alice"), e.newUser("bob")
		acme := e.newOrg(alice, "acme", "")
		d := e.register(alice.Token, acme.ID, "d", newKey(t), 201)
		quiet := e.register(bob.Token, bob.PersonalOrg, "quiet", newKey(t), 201)

		ms := e.openStream(orgPath(acme.ID, "/events"), alice.Token, "")
		sync := ms.next()
		require.Equal(t, api.EventSync, sync.Type)
		start := sync.Event.Revision
		// Twenty renames: each a device.updated of a few hundred bytes, several KiB in all.
		var revs []int64
		for i := range 20 {
			host := fmt.Sprintf("d-renamed-%02d", i)
			e.call("PATCH", devicePath(d.ID, ""), d.Token, api.UpdateDeviceRequest{Hostname: &host}, 200, nil)
			revs = append(revs, expect(t, ms, start, evWant{api.EventDeviceUpdated, d.ID}))
		}
		ms.close()
		bs := e.openStream(orgPath(bob.PersonalOrg, "/events"), bob.Token, "")
		bobStart := bs.next().Event.Revision
		host := "quiet-renamed"
		e.call("PATCH", devicePath(quiet.ID, ""), quiet.Token, api.UpdateDeviceRequest{Hostname: &host}, 200, nil)
		bobRev := expect(t, bs, bobStart, evWant{api.EventDeviceUpdated, quiet.ID})
		bs.close()

		require.Zero(t, e.prunedRevision(), "pruned before the sweep")
		e.coord.sweep(context.Background())
		pruned := e.prunedRevision()
		require.Greater(t, pruned, revs[0], "the sweep pruned none of the renames")
		require.Less(t, pruned, revs[len(revs)-1], "the sweep pruned every rename")

		// From before the pruned range: a sync with the device as it is now.
		old := e.openStream(orgPath(acme.ID, "/events"), alice.Token, strconv.FormatInt(start, 10))
		ev := old.next()
		old.close()
		require.Equal(t, api.EventSync, ev.Type, "resume from before the pruned range")
		require.Len(t, ev.Event.Devices, 1)
		assert.Equal(t, "d-renamed-19", ev.Event.Devices[0].Hostname)

		// From within what is kept: exactly the renames after the cursor, no sync.
		var want []evWant
		for _, r := range revs {
			if r > pruned {
				want = append(want, evWant{api.EventDeviceUpdated, d.ID})
			}
		}
		require.NotEmpty(t, want)
		resumed := e.openStream(orgPath(acme.ID, "/events"), alice.Token, strconv.FormatInt(pruned, 10))
		last := expect(t, resumed, pruned, want...)
		resumed.close()
		assert.Equal(t, revs[len(revs)-1], last, "last event of the resumed stream")

		// Bob's organization held less than the bound: its event is still there. (The
		// pruned revision is the store's, so a resume from below it gets a sync; bob's rename
		// came after the pruned range.)
		require.Greater(t, bobRev, pruned)
		ctx := context.Background()
		var kept []store.Event
		require.NoError(t, e.store.View(ctx, func(tx store.Tx) (err error) {
			kept, err = tx.ListEvents(ctx, bob.PersonalOrg, "", 0, 0)
			return err
		}))
		assert.Len(t, kept, 2, "events of an organization within the bound (device added, renamed)")
	})
}
