package coordinator

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func TestFreeHostname(t *testing.T) {
	devs := []store.Device{{ID: "1", Hostname: "db"}, {ID: "2", Hostname: "DB-1"}}
	assert.Equal(t, "db-2", freeHostname(devs, "db"), "taken names compare case-insensitively")
	long := strings.Repeat("a", api.MaxHostnameLength-1) + "-"
	got := freeHostname([]store.Device{{Hostname: long}}, long)
	assert.LessOrEqual(t, len(got), api.MaxHostnameLength)
	assert.NoError(t, validHostname(got), got)
	assert.True(t, strings.HasSuffix(got, "a-1"))
}
