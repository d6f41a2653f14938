package watch

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestChanges(t *testing.T) {
	var c Changes
	assert.Nil(t, c.List(), "nothing appended")
	c.Add("o1", "d1", 3)
	c.Add("o2", "", 4)
	c.Add("o1", "d1", 5)
	c.Add("o3", "d1", 6)
	c.Add("o3", "d2", 7) // another target: the change is for everyone
	c.Add("o4", "", 8)
	c.Add("o4", "d1", 9) // an untargeted event already: for everyone
	c.Add("o4", "d1", 10)
	assert.Equal(t, []store.Change{
		{OrganizationID: "o1", Revision: 5, TargetDeviceID: "d1"},
		{OrganizationID: "o2", Revision: 4},
		{OrganizationID: "o3", Revision: 7},
		{OrganizationID: "o4", Revision: 10},
	}, c.List())
}

type calls struct {
	mu sync.Mutex
	l  []store.Change
}

func (c *calls) add(ch store.Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.l = append(c.l, ch)
}

func (c *calls) get() []store.Change {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]store.Change(nil), c.l...)
}

func TestHubOrderCancelClose(t *testing.T) {
	h := NewHub()
	var a, b calls
	cancelA := h.Watch(a.add)
	h.Watch(b.add)
	block := make(chan struct{})
	h.Watch(func(store.Change) { <-block }) // a slow watcher delays the others, never Publish
	for i := range 100 {
		h.Publish(store.Change{OrganizationID: "o", Revision: int64(i + 1)})
	}
	close(block)
	require.Eventually(t, func() bool { return len(b.get()) == 100 }, 10*time.Second, time.Millisecond)
	for i, c := range b.get() {
		require.EqualValues(t, i+1, c.Revision, "publication order")
	}
	require.Eventually(t, func() bool { return len(a.get()) == 100 }, 10*time.Second, time.Millisecond)
	cancelA()
	h.Publish(store.Change{OrganizationID: "o", Revision: 101})
	require.Eventually(t, func() bool { return len(b.get()) == 101 }, 10*time.Second, time.Millisecond)
	assert.Len(t, a.get(), 100, "a canceled watcher hears nothing more")

	for range 5 {
		h.Publish(store.Change{OrganizationID: "o", Revision: 200})
	}
	require.Eventually(t, func() bool { return len(b.get()) == 106 }, 10*time.Second, time.Millisecond)

	h.Close()
	h.Close() // harmless
	h.Publish(store.Change{OrganizationID: "o", Revision: 300})
	h.Watch(a.add)()
	assert.Len(t, b.get(), 106, "nothing after Close")
}
