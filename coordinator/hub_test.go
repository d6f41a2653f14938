package coordinator

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
)

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// A change wakes the streams of its organization only; a broadcast wakes them all.
func TestHubWakesPerOrganization(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	a := e.newOrg(alice, "a", "")
	b := e.newOrg(alice, "b", "")
	keyB := e.newRegKey(alice, b.ID, api.CreateRegKeyRequest{})

	waitA, waitB := e.coord.hub.wait(a.ID), e.coord.hub.wait(b.ID)
	assert.Equal(t, waitA, e.coord.hub.wait(a.ID), "streams of one organization share its channel")
	e.register(keyB.Secret, "", "in-b", newKey(t), 201)
	require.Eventually(t, func() bool { return isClosed(waitB) }, 10*time.Second, time.Millisecond, "b's change wakes b")
	// Changes reach the hub in commit order, so a's channel would be closed by now.
	assert.False(t, isClosed(waitA), "b's change must not wake a")

	e.coord.hub.broadcast()
	assert.True(t, isClosed(waitA), "a broadcast wakes every organization")
	assert.False(t, isClosed(e.coord.hub.wait(a.ID)), "a new wait after the wake-up is fresh")
}
