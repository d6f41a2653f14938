package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// inFiles reports which of the database's files (the file, -wal, -shm) hold secret.
func inFiles(t *testing.T, path string, secret []byte) []string {
	t.Helper()
	var where []string
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		if bytes.Contains(b, secret) {
			where = append(where, filepath.Base(p))
		}
	}
	return where
}

// withRelays makes an organization and stores its relays with secret.
func withRelays(t *testing.T, s *Store, secret []byte) store.OrgRelays {
	t.Helper()
	now := time.Now()
	r := store.OrgRelays{OrganizationID: "o1", TURNServers: []string{"turn:192.0.2.1:3478?transport=udp"}, Secret: secret, UpdatedAt: now}
	require.NoError(t, s.Tx(context.Background(), func(tx store.Tx) error {
		ctx := context.Background()
		if err := tx.CreateUser(ctx, store.User{ID: "u1", Username: "carl", CreatedAt: now}); err != nil {
			return err
		}
		if err := tx.CreateOrganization(ctx, store.Organization{ID: "o1", Name: "acme", OwnerID: "u1", IPv4CIDR: "100.64.0.0/16", CreatedAt: now}); err != nil {
			return err
		}
		return tx.SetOrgRelays(ctx, r)
	}))
	return r
}

// TestCompactScrubsOverwrittenRows: a secret overwritten in place (as re-sealing does) stays
// in the WAL until Compact, and then is in none of the files, while the store stays open.
func TestCompactScrubsOverwrittenRows(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	s := openT(t, path)
	defer s.Close()
	secret := []byte("plaintext-relay-secret-5b1e0c")
	r := withRelays(t, s, secret)
	r.Secret = []byte("sealed")
	require.NoError(t, s.Tx(ctx, func(tx store.Tx) error { return tx.SetOrgRelays(ctx, r) }))
	require.NotEmpty(t, inFiles(t, path, secret), "the old secret is nowhere before Compact: the test proves nothing")

	require.NoError(t, s.Compact(ctx))
	assert.Empty(t, inFiles(t, path, secret), "files holding the old secret after Compact")
	fi, err := os.Stat(path + "-wal")
	require.NoError(t, err)
	assert.Zero(t, fi.Size(), "WAL size after Compact")
	var got store.OrgRelays
	require.NoError(t, s.View(ctx, func(tx store.Tx) (err error) { got, err = tx.GetOrgRelays(ctx, "o1"); return err }))
	assert.Equal(t, r.Secret, got.Secret)
}

// TestCompactScrubsFreeSpace: what a database written without secure_delete (by an older
// version) left in free space is gone after Compact.
func TestCompactScrubsFreeSpace(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	secret := []byte("plaintext-relay-secret-9c4d2a")
	s := openT(t, path)
	withRelays(t, s, secret)
	require.NoError(t, s.Close())
	// An older version deleted it without zeroing it.
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?_pragma=secure_delete(0)")
	require.NoError(t, err)
	_, err = db.Exec(`DELETE FROM org_relays WHERE organization_id = 'o1'`)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	require.Equal(t, []string{"c.db"}, inFiles(t, path, secret), "the old secret is not in the file's free space: the test proves nothing")

	s = openT(t, path)
	defer s.Close()
	require.NoError(t, s.Compact(ctx))
	assert.Empty(t, inFiles(t, path, secret), "files holding the old secret after Compact")
}
