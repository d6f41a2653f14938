package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
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
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpenCreatesFileAndMigrates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub dir with spaces & ?", "new.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	s := openT(t, path)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file not created: %v", err)
	}
	ctx := context.Background()
	var journal string
	var fk, busy int
	conn, err := s.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for q, dst := range map[string]any{"PRAGMA journal_mode": &journal, "PRAGMA foreign_keys": &fk, "PRAGMA busy_timeout": &busy} {
		if err := conn.QueryRowContext(ctx, q).Scan(dst); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	conn.Close()
	if !strings.EqualFold(journal, "wal") || fk != 1 || busy <= 0 {
		t.Errorf("journal_mode=%s foreign_keys=%d busy_timeout=%d; want wal, 1, >0", journal, fk, busy)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening applies nothing twice.
	s = openT(t, path)
	s.Close()
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	var n, maxV int
	if err := rawDB(t, path).QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &maxV); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || maxV != len(ms) {
		t.Errorf("schema_migrations has %d rows up to version %d, want %d", n, maxV, len(ms))
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "future.db")
	openT(t, path).Close()
	if _, err := rawDB(t, path).Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, '0999_future.sql', 'x')`); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), path)
	if err == nil {
		s.Close()
		t.Fatal("Open accepted a database from a newer program")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("error %q does not say the schema is newer", err)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(context.Background(), ""); err == nil {
		t.Error("Open(\"\") succeeded")
	}
	if _, err := Open(context.Background(), filepath.Join(t.TempDir(), "missing-dir", "x.db")); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
	notDB := filepath.Join(t.TempDir(), "garbage.db")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("not a database ", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(context.Background(), notDB); err == nil {
		s.Close()
		t.Error("Open of a non-database file succeeded")
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
	if err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	var created string
	if err := db.QueryRow(`SELECT created_at FROM users`).Scan(&created); err != nil {
		t.Fatal(err)
	}
	if created != "2024-01-03T03:04:05.000000006Z" {
		t.Errorf("stored time %q", created)
	}
	var eps, pfx string
	var v6 sql.NullString
	if err := db.QueryRow(`SELECT endpoints, child_prefixes, tunnel_ipv6 FROM devices`).Scan(&eps, &pfx, &v6); err != nil {
		t.Fatal(err)
	}
	if eps != `[{"source":"stun","address":"1.2.3.4:5"}]` || pfx != `[]` || v6.Valid {
		t.Errorf("stored endpoints %s, prefixes %s, ipv6 %v", eps, pfx, v6)
	}
	// Full nanosecond precision comes back.
	u, err := getUser(ctx, s, "u")
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2024, 1, 2, 20, 4, 5, 6, zone); !u.CreatedAt.Equal(want) || u.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v, want %v in UTC", u.CreatedAt, want)
	}
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
	if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "dev-42") {
		t.Errorf("GetDevice error %q: want ErrNotFound naming the device", err)
	}
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
	if err := a.Tx(ctx, func(tx store.Tx) error {
		if err := tx.CreateUser(ctx, store.User{ID: "u", Username: "u"}); err != nil {
			return err
		}
		return tx.CreateOrganization(ctx, store.Organization{ID: "o", Name: "o", OwnerID: "u"})
	}); err != nil {
		t.Fatal(err)
	}
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
		if err != nil {
			t.Fatalf("concurrent write through two handles: %v", err)
		}
	}
	var latest int64
	if err := b.Tx(ctx, func(tx store.Tx) error {
		var err error
		latest, err = tx.LatestRevision(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if latest != 100 {
		t.Errorf("LatestRevision = %d, want 100", latest)
	}
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
	if _, err := getUser(ctx, s, "u"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("user of a panicked Tx: %v, want ErrNotFound", err)
	}
}

// TestMigrateOrgNamesKeepsData upgrades a database written at schema version 3 (organization
// names globally unique) and checks that the table rebuild of 0004 lost nothing that refers to
// organizations, left foreign keys enforced, and lifted the uniqueness of non-personal names.
func TestMigrateOrgNamesKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v3.db")
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	raw := rawDB(t, path)
	if _, err := raw.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:3] {
		if _, err := raw.Exec(m.sql); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		if _, err := raw.Exec(`INSERT INTO schema_migrations VALUES (?, ?, 'x')`, m.version, m.name); err != nil {
			t.Fatal(err)
		}
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
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
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
		if d.PendingTokenID != "" || d.PendingTokenHash != nil {
			t.Errorf("migrated device has a pending token: %+v", d)
		}
		if evs, err := tx.ListEvents(ctx, "o", "", 0, 0); err != nil || len(evs) != 1 {
			t.Errorf("events after migration: %v, %v", evs, err)
		}
		if _, err := tx.GetOrgRelays(ctx, "o"); err != nil {
			return err
		}
		// Non-personal names may repeat now; personal ones may not.
		if err := tx.CreateOrganization(ctx, store.Organization{ID: "o2", Name: "acme", OwnerID: "u"}); err != nil {
			return fmt.Errorf("second acme: %w", err)
		}
		if err := tx.CreateOrganization(ctx, store.Organization{ID: "p2", Name: "alice", OwnerID: "u", Personal: true}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("second personal alice: %v, want ErrConflict", err)
		}
		// Deleting the organization still cascades (the references point at the new table).
		return tx.DeleteOrganization(ctx, "o")
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Tx(ctx, func(tx store.Tx) error {
		if _, err := tx.GetDevice(ctx, "d"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("device of the deleted organization: %v", err)
		}
		// Foreign keys are enforced again on the store's connection.
		err := tx.AddMember(ctx, store.Membership{OrganizationID: "nope", UserID: "u", Role: "owner"})
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("membership of a missing organization: %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
