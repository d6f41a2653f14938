package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
	"github.com/nexodus-sdk/nexodus/coordinator/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func openT(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	require.NoError(t, err, "Open")
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, storetest.ReopenFunc) {
		path := filepath.Join(t.TempDir(), "coordinator.db")
		return openT(t, path), func(t *testing.T) store.Store { return openT(t, path) }
	})
}

// rawDB opens the file behind the store's back to inspect what it wrote.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath())
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpenCreatesFileAndMigrates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub dir with spaces & ?", "new.db")
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	s := openT(t, path)
	_, err := os.Stat(path)
	require.NoError(t, err)
	ctx := context.Background()
	var journal string
	var fk, busy, secure int
	conn, err := s.db.Conn(ctx)
	require.NoError(t, err)
	for q, dst := range map[string]any{"PRAGMA journal_mode": &journal, "PRAGMA foreign_keys": &fk,
		"PRAGMA busy_timeout": &busy, "PRAGMA secure_delete": &secure} {
		require.NoError(t, conn.QueryRowContext(ctx, q).Scan(dst), q)
	}
	conn.Close()
	assert.Equal(t, "wal", strings.ToLower(journal), "journal_mode")
	assert.Equal(t, 1, fk, "foreign_keys")
	assert.Positive(t, busy, "busy_timeout")
	assert.Equal(t, 1, secure, "secure_delete")
	require.NoError(t, s.Close())

	// Reopening applies nothing twice.
	s = openT(t, path)
	s.Close()
	ms, err := loadMigrations()
	require.NoError(t, err)
	var n, maxV int
	require.NoError(t, rawDB(t, path).QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &maxV))
	assert.Equal(t, []int{len(ms), len(ms)}, []int{n, maxV}, "schema_migrations rows and highest version")
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "future.db")
	openT(t, path).Close()
	_, err := rawDB(t, path).Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, '0999_future.sql', 'x')`)
	require.NoError(t, err)
	_, err = Open(context.Background(), path)
	require.ErrorContains(t, err, "newer", "Open of a database from a newer program")
}

func TestOpenErrors(t *testing.T) {
	notDB := filepath.Join(t.TempDir(), "garbage.db")
	require.NoError(t, os.WriteFile(notDB, []byte(strings.Repeat("not a database ", 100)), 0o644))
	for what, path := range map[string]string{
		"empty path": "", "missing directory": filepath.Join(t.TempDir(), "missing-dir", "x.db"), "not a database": notDB,
	} {
		_, err := Open(context.Background(), path)
		assert.Error(t, err, what)
	}
}

// TestStoredFormat pins the on-disk representation: UTC times of fixed width, JSON lists, and
// NULL for a missing tunnel address.
func TestStoredFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "format.db")
	s := openT(t, path)
	defer s.Close()
	ctx := context.Background()
	zone := time.FixedZone("x", -7*3600)
	err := s.Tx(ctx, func(tx store.Tx) error {
		if err := tx.CreateUser(ctx, store.User{ID: "u", Username: "u", CreatedAt: time.Date(2024, 1, 2, 20, 4, 5, 6, zone)}); err != nil {
			return err
		}
		if err := tx.CreateOrganization(ctx, store.Organization{ID: "o", Name: "o", OwnerID: "u"}); err != nil {
			return err
		}
		return tx.CreateDevice(ctx, store.Device{ID: "d", OrganizationID: "o", PublicKey: "k", TunnelIPv4: "100.64.0.1",
			Endpoints: []store.Endpoint{{Source: "stun", Address: "1.2.3.4:5"}}})
	})
	require.NoError(t, err)
	db := rawDB(t, path)
	var created string
	require.NoError(t, db.QueryRow(`SELECT created_at FROM users`).Scan(&created))
	assert.Equal(t, "2024-01-03T03:04:05.000000006Z", created, "stored time")
	var eps, pfx string
	var v6 sql.NullString
	require.NoError(t, db.QueryRow(`SELECT endpoints, child_prefixes, tunnel_ipv6 FROM devices`).Scan(&eps, &pfx, &v6))
	assert.Equal(t, `[{"source":"stun","address":"1.2.3.4:5"}]`, eps, "stored endpoints")
	assert.Equal(t, `[]`, pfx, "stored child prefixes")
	assert.False(t, v6.Valid, "stored missing tunnel IPv6")
	// Full nanosecond precision comes back.
	u, err := getUser(ctx, s, "u")
	require.NoError(t, err)
	assert.WithinDuration(t, time.Date(2024, 1, 2, 20, 4, 5, 6, zone), u.CreatedAt, 0)
	assert.Equal(t, time.UTC, u.CreatedAt.Location())
}

func getUser(ctx context.Context, s store.Store, id string) (u store.User, err error) {
	err = s.Tx(ctx, func(tx store.Tx) error {
		u, err = tx.GetUser(ctx, id)
		return err
	})
	return u, err
}

func TestErrorsCarryContext(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "e.db"))
	defer s.Close()
	ctx := context.Background()
	err := s.Tx(ctx, func(tx store.Tx) error { _, err := tx.GetDevice(ctx, "dev-42"); return err })
	assert.ErrorIs(t, err, store.ErrNotFound)
	assert.ErrorContains(t, err, "dev-42", "the error names the device")
}

// TestTwoHandlesOneFile covers a second Store on the same file (another process, in practice):
// IMMEDIATE transactions plus busy_timeout make their writers wait for each other instead of
// failing with SQLITE_BUSY.
func TestTwoHandlesOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	a, b := openT(t, path), openT(t, path)
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	require.NoError(t, a.Tx(ctx, func(tx store.Tx) error {
		if err := tx.CreateUser(ctx, store.User{ID: "u", Username: "u"}); err != nil {
			return err
		}
		return tx.CreateOrganization(ctx, store.Organization{ID: "o", Name: "o", OwnerID: "u"})
	}))
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for _, s := range []*Store{a, b} {
		for g := 0; g < 2; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 25; i++ {
					errs <- s.Tx(ctx, func(tx store.Tx) error {
						// Read, then write: the pattern a deferred transaction fails with SQLITE_BUSY.
						if _, err := tx.LatestRevision(ctx); err != nil {
							return err
						}
						_, err := tx.AppendEvent(ctx, store.Event{OrganizationID: "o", Type: "x"})
						return err
					})
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err, "concurrent write through two handles")
	}
	var latest int64
	require.NoError(t, b.Tx(ctx, func(tx store.Tx) error {
		var err error
		latest, err = tx.LatestRevision(ctx)
		return err
	}))
	assert.EqualValues(t, 100, latest, "LatestRevision")
}

// TestPanicInTxRollsBack checks that a panicking fn leaves the connection usable.
func TestPanicInTxRollsBack(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "p.db"))
	defer s.Close()
	ctx := context.Background()
	func() {
		defer func() { _ = recover() }()
		_ = s.Tx(ctx, func(tx store.Tx) error {
			if err := tx.CreateUser(ctx, store.User{ID: "u", Username: "u"}); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	_, err := getUser(ctx, s, "u")
	assert.ErrorIs(t, err, store.ErrNotFound, "user of a panicked Tx")
}

// TestMigrateOrgNamesKeepsData upgrades a database written at schema version 3 (organization
// names globally unique) and checks that the table rebuild of 0004 lost nothing that refers to
// organizations, left foreign keys enforced, and lifted the uniqueness of non-personal names.
func TestMigrateOrgNamesKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v3.db")
	ms, err := loadMigrations()
	require.NoError(t, err)
	raw := rawDB(t, path)
	_, err = raw.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`)
	require.NoError(t, err)
	for _, m := range ms[:3] {
		_, err := raw.Exec(m.sql)
		require.NoError(t, err, m.name)
		_, err = raw.Exec(`INSERT INTO schema_migrations VALUES (?, ?, 'x')`, m.version, m.name)
		require.NoError(t, err)
	}
	const ts = "2025-01-01T00:00:00.000000000Z"
	for _, q := range []string{
		`INSERT INTO users VALUES ('u', 'alice', '` + ts + `')`,
		`INSERT INTO organizations VALUES ('o', 'acme', '', 'u', 0, '100.64.0.0/16', 'fd00::/64', '` + ts + `')`,
		`INSERT INTO organizations VALUES ('p', 'alice', '', 'u', 1, '100.65.0.0/16', 'fd00:1::/64', '` + ts + `')`,
		`INSERT INTO memberships VALUES ('o', 'u', 'owner', '` + ts + `')`,
		`INSERT INTO reg_keys VALUES ('k', 'o', 'u', '', x'00', 0, 0, NULL, 0, '` + ts + `')`,
		`INSERT INTO devices (id, organization_id, owner_id, reg_key_id, public_key, hostname, tunnel_ipv4, tunnel_ipv6,
			endpoints, symmetric_nat, child_prefixes, ephemeral, token_id, token_hash, last_seen_at, created_at, updated_at)
			VALUES ('d', 'o', 'u', 'k', 'pk', 'h', '100.64.0.1', NULL, '[]', 0, '[]', 0, 't', x'01', '` + ts + `', '` + ts + `', '` + ts + `')`,
		`INSERT INTO events VALUES (1, 'o', '', 'x', NULL, '` + ts + `')`,
		`INSERT INTO org_relays VALUES ('o', '[]', '[]', x'00', '` + ts + `')`,
	} {
		_, err := raw.Exec(q)
		require.NoError(t, err, q)
	}
	raw.Close()

	s := openT(t, path)
	defer s.Close()
	ctx := context.Background()
	err = s.Tx(ctx, func(tx store.Tx) error {
		if _, err := tx.GetMember(ctx, "o", "u"); err != nil {
			return err
		}
		if _, err := tx.GetRegKey(ctx, "k"); err != nil {
			return err
		}
		d, err := tx.GetDevice(ctx, "d")
		if err != nil {
			return err
		}
		assert.Empty(t, d.PendingTokenID, "pending token of a migrated device")
		assert.Nil(t, d.PendingTokenHash, "pending token of a migrated device")
		evs, err := tx.ListEvents(ctx, "o", "", 0, 0)
		if err != nil {
			return err
		}
		assert.Len(t, evs, 1, "events after migration")
		if _, err := tx.GetOrgRelays(ctx, "o"); err != nil {
			return err
		}
		// Non-personal names may repeat now; personal ones may not.
		if err := tx.CreateOrganization(ctx, store.Organization{ID: "o2", Name: "acme", OwnerID: "u"}); err != nil {
			return fmt.Errorf("second acme: %w", err)
		}
		if err := tx.CreateOrganization(ctx, store.Organization{ID: "p2", Name: "alice", OwnerID: "u", Personal: true}); !assert.ErrorIs(t, err, store.ErrConflict, "second personal alice") {
			return nil
		}
		// Deleting the organization still cascades (the references point at the new table).
		return tx.DeleteOrganization(ctx, "o")
	})
	require.NoError(t, err)
	err = s.Tx(ctx, func(tx store.Tx) error {
		_, err := tx.GetDevice(ctx, "d")
		assert.ErrorIs(t, err, store.ErrNotFound, "device of the deleted organization")
		// Foreign keys are enforced again on the store's connection.
		err = tx.AddMember(ctx, store.Membership{OrganizationID: "nope", UserID: "u", Role: "owner"})
		assert.ErrorIs(t, err, store.ErrNotFound, "membership of a missing organization")
		return nil
	})
	require.NoError(t, err)
}

// TestFilesArePrivate checks that the database and the -wal and -shm files SQLite makes beside
// it are 0600 under a umask that would leave them readable by everyone.
func TestFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "private.db")
	s := openT(t, path)
	defer s.Close()
	ctx := context.Background()
	// A write and a read make SQLite create the -wal and -shm files.
	require.NoError(t, s.Tx(ctx, func(tx store.Tx) error { return tx.CreateUser(ctx, store.User{ID: "u", Username: "u"}) }))
	_, err := getUser(ctx, s, "u")
	require.NoError(t, err)
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		info, err := os.Stat(p)
		require.NoError(t, err, p)
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "mode of %s", filepath.Base(p))
	}
}

// TestExistingFilesMadePrivate checks that a database an older version left readable by
// everyone is made private at Open, with its -wal file.
func TestExistingFilesMadePrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	s := openT(t, path)
	ctx := context.Background()
	require.NoError(t, s.Tx(ctx, func(tx store.Tx) error { return tx.CreateUser(ctx, store.User{ID: "u", Username: "u"}) }))
	require.NoError(t, s.Close())
	require.NoError(t, os.Chmod(path, 0o644))
	require.NoError(t, os.WriteFile(path+"-wal", nil, 0o644))
	require.NoError(t, os.Chmod(path+"-wal", 0o644))
	s = openT(t, path)
	defer s.Close()
	for _, p := range []string{path, path + "-wal"} {
		info, err := os.Stat(p)
		require.NoError(t, err, p)
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "mode of %s", filepath.Base(p))
	}
}

// migrateTo builds a database at schema version v from the embedded migrations, as an older
// program would have left it.
func migrateTo(t *testing.T, path string, v int) *sql.DB {
	t.Helper()
	ms, err := loadMigrations()
	require.NoError(t, err)
	raw := rawDB(t, path)
	_, err = raw.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`)
	require.NoError(t, err)
	for _, m := range ms[:v] {
		_, err := raw.Exec(m.sql)
		require.NoError(t, err, m.name)
		_, err = raw.Exec(`INSERT INTO schema_migrations VALUES (?, ?, 'x')`, m.version, m.name)
		require.NoError(t, err)
	}
	return raw
}

// TestMigrateUsernamesRefusesCollisions: usernames that differ only in case are never merged
// by the migration that makes usernames case-insensitive; it fails naming them, and succeeds
// once one of them is renamed.
func TestMigrateUsernamesRefusesCollisions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v5.db")
	raw := migrateTo(t, path, 5)
	const ts = "2025-01-01T00:00:00.000000000Z"
	for _, q := range []string{
		`INSERT INTO users VALUES ('u1', 'carl', '` + ts + `'), ('u2', 'Carl', '` + ts + `'), ('u3', 'dora', '` + ts + `'),
			('u4', 'ÉVA', '` + ts + `'), ('u5', 'éva', '` + ts + `')`,
		`INSERT INTO organizations VALUES ('o1', 'carl', '', 'u1', 1, '100.64.0.0/16', 'fd00::/64', '` + ts + `'),
			('o2', 'Carl', '', 'u2', 1, '100.65.0.0/16', 'fd00:1::/64', '` + ts + `'),
			('o3', 'DORA', '', 'u3', 0, '100.66.0.0/16', 'fd00:2::/64', '` + ts + `'),
			('o4', 'dora', '', 'u3', 1, '100.67.0.0/16', 'fd00:3::/64', '` + ts + `')`,
	} {
		_, err := raw.Exec(q)
		require.NoError(t, err, q)
	}
	_, err := Open(context.Background(), path)
	require.Error(t, err, "Open with usernames that differ only in case")
	assert.ErrorContains(t, err, "usernames Carl, carl", "the error names the colliding usernames")
	assert.ErrorContains(t, err, "personal organization names Carl, carl", "the error names the colliding organizations")
	assert.NotContains(t, err.Error(), "dora", "a non-personal organization does not collide")
	assert.NotContains(t, err.Error(), "va", "only ASCII letters fold")

	_, err = raw.Exec(`UPDATE users SET username = 'carl2' WHERE id = 'u2'`)
	require.NoError(t, err)
	_, err = raw.Exec(`UPDATE organizations SET name = 'carl2' WHERE id = 'o2'`)
	require.NoError(t, err)
	s := openT(t, path)
	defer s.Close()
	u, err := getUser(context.Background(), s, "u2")
	require.NoError(t, err)
	assert.Equal(t, "carl2", u.Username, "the renamed user, kept")
}
