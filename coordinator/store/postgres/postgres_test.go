package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
	"github.com/nexodus-sdk/nexodus/coordinator/store/postgres/pgtest"
	"github.com/nexodus-sdk/nexodus/coordinator/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// freshDatabase is an empty database of the test's own (see package pgtest).
func freshDatabase(t *testing.T) string { return pgtest.Database(t) }

func openT(t *testing.T, dbURL string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, dbURL)
	require.NoError(t, err, "Open")
	return s
}

func TestConformance(t *testing.T) {
	freshDatabase(t) // skips the whole suite when there is no server
	storetest.Run(t, func(t *testing.T) (store.Store, storetest.ReopenFunc) {
		dbURL := freshDatabase(t)
		return openT(t, dbURL), func(t *testing.T) store.Store { return openT(t, dbURL) }
	}, storetest.Shared())
}

// TestListenerReconnects ends the LISTEN connection's backend, as a database restart or a
// network cut would: watchers get the "re-read everything" change, then changes again.
func TestListenerReconnects(t *testing.T) {
	dbURL := freshDatabase(t)
	s := openT(t, dbURL)
	defer s.Close()
	ctx := context.Background()
	var mu sync.Mutex
	var got []store.Change
	cancel := s.Watch(func(c store.Change) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, c)
	})
	defer cancel()
	changes := func() []store.Change {
		mu.Lock()
		defer mu.Unlock()
		return append([]store.Change(nil), got...)
	}
	require.NoError(t, s.Tx(ctx, func(tx store.Tx) error {
		if err := tx.CreateUser(ctx, store.User{ID: "u", Username: "u"}); err != nil {
			return err
		}
		return tx.CreateOrganization(ctx, store.Organization{ID: "o", Name: "o", OwnerID: "u"})
	}))
	appendOne := func() int64 {
		var rev int64
		require.NoError(t, s.Tx(ctx, func(tx store.Tx) error {
			var err error
			rev, err = tx.AppendEvent(ctx, store.Event{OrganizationID: "o", Type: "x"})
			return err
		}))
		return rev
	}
	first := appendOne()
	require.Eventually(t, func() bool { return len(changes()) == 1 }, 10*time.Second, time.Millisecond, "first change")

	pid := s.listener.pid.Load()
	admin, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer admin.Close(ctx)
	var ended bool
	require.NoError(t, admin.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&ended))
	require.True(t, ended, "pg_terminate_backend of the listener")

	require.Eventually(t, func() bool { return len(changes()) >= 2 }, 30*time.Second, 5*time.Millisecond, "change after reconnecting")
	assert.Equal(t, store.Change{}, changes()[1], "after reconnecting: re-read everything")
	assert.NotEqual(t, pid, s.listener.pid.Load(), "a new listen connection")
	second := appendOne()
	require.Eventually(t, func() bool { return len(changes()) >= 3 }, 10*time.Second, time.Millisecond, "change after the reconnect")
	assert.Equal(t, []store.Change{{OrganizationID: "o", Revision: first}, {}, {OrganizationID: "o", Revision: second}}, changes())
}

// TestOpenTogether starts several replicas on a new database at once: one migrates, the
// others wait for it under the advisory lock, and all come up.
func TestOpenTogether(t *testing.T) {
	dbURL := freshDatabase(t)
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			stores[i], errs[i] = Open(ctx, dbURL)
		})
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "Open %d", i)
		defer stores[i].Close()
	}
	ms, err := loadMigrations()
	require.NoError(t, err)
	var count, top int
	require.NoError(t, stores[0].pool.QueryRow(context.Background(),
		`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&count, &top))
	assert.Equal(t, []int{len(ms), len(ms)}, []int{count, top}, "schema_migrations rows and highest version")
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	dbURL := freshDatabase(t)
	s := openT(t, dbURL)
	_, err := s.pool.Exec(context.Background(), `INSERT INTO schema_migrations (version, name) VALUES (999, '0999_future.sql')`)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = Open(context.Background(), dbURL)
	require.ErrorContains(t, err, "newer", "Open of a database from a newer program")
}

func TestOpenErrors(t *testing.T) {
	_, err := Open(context.Background(), "postgres://user:secret@[::1")
	require.Error(t, err, "Open of a malformed URL")
	assert.NotContains(t, err.Error(), "secret", "the error does not repeat the password")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = Open(ctx, "postgres://postgres@127.0.0.1:1/nope?sslmode=disable&connect_timeout=2")
	require.Error(t, err, "Open with nothing listening")
}

// TestMigrateUsernamesRefusesCollisions: usernames that differ only in case are never merged
// by 0006; the migration fails naming them, and succeeds once one of them is renamed.
func TestMigrateUsernamesRefusesCollisions(t *testing.T) {
	dbURL := freshDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	ms, err := loadMigrations()
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`)
	require.NoError(t, err)
	for _, m := range ms[:5] {
		_, err := conn.Exec(ctx, m.sql)
		require.NoError(t, err, m.name)
		_, err = conn.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name)
		require.NoError(t, err)
	}
	for _, q := range []string{
		`INSERT INTO users VALUES ('u1', 'carl', now()), ('u2', 'Carl', now()), ('u3', 'dora', now()),
			('u4', 'ÉVA', now()), ('u5', 'éva', now())`,
		`INSERT INTO organizations VALUES ('o1', 'carl', '', 'u1', true, '100.64.0.0/16', 'fd00::/64', now()),
			('o2', 'Carl', '', 'u2', true, '100.65.0.0/16', 'fd00:1::/64', now()),
			('o3', 'DORA', '', 'u3', false, '100.66.0.0/16', 'fd00:2::/64', now()),
			('o4', 'dora', '', 'u3', true, '100.67.0.0/16', 'fd00:3::/64', now())`,
	} {
		_, err := conn.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	_, err = Open(ctx, dbURL)
	require.Error(t, err, "Open with usernames that differ only in case")
	assert.ErrorContains(t, err, "usernames Carl, carl", "the error names the colliding usernames")
	assert.ErrorContains(t, err, "personal organization names Carl, carl", "the error names the colliding organizations")
	assert.NotContains(t, err.Error(), "dora", "a non-personal organization does not collide")
	assert.NotContains(t, err.Error(), "va", "only ASCII letters fold")

	_, err = conn.Exec(ctx, `UPDATE users SET username = 'carl2' WHERE id = 'u2'`)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `UPDATE organizations SET name = 'carl2' WHERE id = 'o2'`)
	require.NoError(t, err)
	s := openT(t, dbURL)
	defer s.Close()
	var u store.User
	require.NoError(t, s.View(ctx, func(tx store.Tx) error {
		u, err = tx.GetUserByUsername(ctx, "CARL2")
		return err
	}))
	assert.Equal(t, "u2", u.ID, "the renamed user, kept")
}

// TestTxRetriesSerializationFailures makes two transactions collide on purpose: each reads
// what the other writes, both under SERIALIZABLE, so PostgreSQL must fail one of them, and Tx
// retries it instead of returning the failure.
func TestTxRetriesSerializationFailures(t *testing.T) {
	dbURL := freshDatabase(t)
	s := openT(t, dbURL)
	defer s.Close()
	ctx := context.Background()
	require.NoError(t, s.Tx(ctx, func(tx store.Tx) error {
		return tx.CreateUser(ctx, store.User{ID: "u", Username: "u"})
	}))
	var bothRead sync.WaitGroup // a barrier: both first attempts have read
	bothRead.Add(2)
	var wg sync.WaitGroup
	var attempts [2]int
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() {
			errs[i] = s.Tx(ctx, func(tx store.Tx) error {
				attempts[i]++
				if _, err := tx.ListTokensForUser(ctx, "u"); err != nil {
					return err
				}
				if attempts[i] == 1 { // line both first attempts up after their reads
					bothRead.Done()
					bothRead.Wait()
				}
				return tx.CreateToken(ctx, store.Token{ID: fmt.Sprintf("t%d", i), UserID: "u"})
			})
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...), "both transactions commit in the end")
	assert.Greater(t, attempts[0]+attempts[1], 2, "one of the two ran again")
}

// TestMigrationsMatchSQLite keeps the rule of the package doc: one migration number is one
// schema change on both engines, under the same name.
func TestMigrationsMatchSQLite(t *testing.T) {
	ms, err := loadMigrations()
	require.NoError(t, err)
	var ours []string
	for _, m := range ms {
		ours = append(ours, m.name)
	}
	entries, err := os.ReadDir(filepath.Join("..", "sqlite", "migrations"))
	require.NoError(t, err)
	var theirs []string
	for _, e := range entries {
		theirs = append(theirs, e.Name())
	}
	assert.Equal(t, theirs, ours, "migrations of the SQLite and PostgreSQL engines")
}
