package migrations_test

import (
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/coordinator/store/internal/migrations"
)

func TestLoad(t *testing.T) {
	ms, err := migrations.Load(fstest.MapFS{
		"migrations/0002_b.sql": {Data: []byte("B")},
		"migrations/0001_a.sql": {Data: []byte("A")},
	})
	require.NoError(t, err)
	assert.Equal(t, []migrations.Migration{{1, "0001_a.sql", "A"}, {2, "0002_b.sql", "B"}}, ms)

	_, err = migrations.Load(fstest.MapFS{"migrations/0001_a.sql": {}, "migrations/0003_c.sql": {}})
	require.ErrorContains(t, err, "without gaps")
	_, err = migrations.Load(fstest.MapFS{"migrations/init.sql": {}})
	require.ErrorContains(t, err, "positive number")
}
