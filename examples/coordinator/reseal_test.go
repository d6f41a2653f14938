package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
)

// TestOlderDatabaseSealedAtStart: a SQLite database an older coordinator left with an
// organization's relay secret unsealed, and no seal key file, is fixed by the first start: the
// key file is made, the secret sealed, and no file of the database holds it any more.
func TestOlderDatabaseSealedAtStart(t *testing.T) {
	clearEnv(t)
	db := filepath.Join(t.TempDir(), "nexodus.db")
	secret := []byte("older-coordinator-relay-secret-31c9")
	ctx := context.Background()
	st, err := sqlite.Open(ctx, db)
	require.NoError(t, err)
	now := time.Now()
	require.NoError(t, st.Tx(ctx, func(tx store.Tx) error {
		if err := tx.CreateUser(ctx, store.User{ID: "u1", Username: "carl", CreatedAt: now}); err != nil {
			return err
		}
		if err := tx.CreateOrganization(ctx, store.Organization{ID: "o1", Name: "acme", OwnerID: "u1", IPv4CIDR: "100.64.0.0/16", CreatedAt: now}); err != nil {
			return err
		}
		// The unsealed form: a zero byte, then the secret as given.
		return tx.SetOrgRelays(ctx, store.OrgRelays{OrganizationID: "o1", TURNServers: []string{"turn:192.0.2.1:3478?transport=udp"},
			Secret: append([]byte{0}, secret...), UpdatedAt: now})
	}))
	require.NoError(t, st.Close())

	_, logs, stop := start(t, "-listen", "127.0.0.1:0", "-db", db)
	defer stop()
	_, err = os.Stat(db + sealKeySuffix)
	require.NoError(t, err, "seal key file")
	assert.Contains(t, logs.String(), "unsealed organization relay secrets sealed")
	assert.Contains(t, logs.String(), "scrubbed from the database files")
	for _, p := range []string{db, db + "-wal", db + "-shm"} {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		require.NoError(t, err)
		assert.False(t, bytes.Contains(b, secret), "%s holds the relay secret", filepath.Base(p))
	}
}
