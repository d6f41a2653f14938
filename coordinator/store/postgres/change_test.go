package postgres

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func TestChangePayload(t *testing.T) {
	for _, c := range []store.Change{
		{OrganizationID: "o1", Revision: 1},
		{OrganizationID: "org-9f3a", Revision: 1 << 62, TargetDeviceID: "dev-1"},
	} {
		p := encodeChange(c)
		got, err := parseChange(p)
		require.NoError(t, err, p)
		assert.Equal(t, c, got, p)
	}
	for _, bad := range []string{"", "{}", "null", `{"o":"o1"}`, `{"o":"","r":3}`, `{"o":"o1","r":-1}`, `{"o":1,"r":1}`,
		"garbage", `{"o":"` + strings.Repeat("x", maxPayload) + `","r":1}`} {
		_, err := parseChange(bad)
		assert.Error(t, err, "payload %.40q", bad)
	}
}

// FuzzParseChange: a payload anyone with access to the database may NOTIFY never panics the
// listener, and what parses encodes back to the same change.
func FuzzParseChange(f *testing.F) {
	f.Add(`{"o":"o1","r":7,"d":"dev"}`)
	f.Add(`{"o":"o1","r":7}`)
	f.Add(`{"o":"o1","r":1e3}`)
	f.Add(`[1,2]`)
	f.Fuzz(func(t *testing.T, payload string) {
		c, err := parseChange(payload)
		if err != nil {
			return
		}
		require.NotEmpty(t, c.OrganizationID)
		require.Positive(t, c.Revision)
		again, err := parseChange(encodeChange(c))
		require.NoError(t, err)
		require.Equal(t, c, again)
	})
}

func TestBackoffBounds(t *testing.T) {
	for attempt := range 40 {
		d := backoff(attempt)
		assert.Positive(t, d, "backoff %d", attempt)
		assert.LessOrEqual(t, d, 100*time.Millisecond, "backoff %d", attempt)
		r := reconnectDelay(attempt)
		assert.GreaterOrEqual(t, r, reconnectMin*3/4, "reconnect delay %d", attempt)
		assert.LessOrEqual(t, r, reconnectMax, "reconnect delay %d", attempt)
	}
	assert.Less(t, reconnectDelay(0), reconnectDelay(8), "reconnect delays grow")
}

// TestSleep: the waits between retries and reconnections end when their time is up, or at
// once when the context ends.
func TestSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		require.NoError(t, sleep(context.Background(), 3*time.Second))
		assert.Equal(t, 3*time.Second, time.Since(start), "sleep waits its time (virtual clock)")

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sleep(ctx, time.Hour) }()
		synctest.Wait()
		cancel()
		assert.ErrorIs(t, <-done, context.Canceled, "sleep ends with its context")
		assert.Equal(t, 3*time.Second, time.Since(start), "no time passed waiting for the cancel")
	})
}
