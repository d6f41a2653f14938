package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nexodus-sdk/nexodus/coordinator/store/internal/migrations"
)

// migrationFiles holds the schema history as NNNN_name.sql files, applied in number order.
// A released migration is never edited; changes go into a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
	// noForeignKeys runs the migration with foreign-key enforcement off, for table rebuilds:
	// dropping a referenced table would otherwise cascade to the rows that refer to it.
	noForeignKeys bool
}

// noForeignKeysMarker in a migration's text sets migration.noForeignKeys.
const noForeignKeysMarker = "nexodus:foreign-keys-off"

func loadMigrations() ([]migration, error) {
	loaded, err := migrations.Load(migrationFiles)
	if err != nil {
		return nil, err
	}
	ms := make([]migration, len(loaded))
	for i, m := range loaded {
		ms[i] = migration{version: m.Version, name: m.Name, sql: m.SQL, noForeignKeys: strings.Contains(m.SQL, noForeignKeysMarker)}
	}
	return ms, nil
}

// migrate applies the migrations the database has not seen yet, each in its own transaction
// together with its schema_migrations row, so a crash leaves the schema at a known version.
// Transactions begin IMMEDIATE, so two processes opening one new file cannot both apply a step.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	// One connection for every step: the foreign_keys pragma is per connection.
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, m := range ms {
		if err := applyMigration(ctx, conn, m, len(ms)); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, conn *sql.Conn, m migration, known int) (err error) {
	if m.noForeignKeys {
		// The pragma is a no-op inside a transaction, so it is set around it.
		if _, err := conn.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
			return fmt.Errorf("migrate %s: %w", m.name, err)
		}
		defer func() {
			// The connection stays in the pool: it must leave with enforcement back on.
			if _, ferr := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA foreign_keys = ON`); ferr != nil && err == nil {
				err = fmt.Errorf("migrate %s: re-enable foreign keys: %w", m.name, ferr)
			}
		}()
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", m.name, err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrate %s: %w", m.name, err)
	}
	if current > known {
		// A newer binary wrote this file; running old code on it could corrupt data.
		return fmt.Errorf("migrate: database schema version %d is newer than this program's %d", current, known)
	}
	if current >= m.version {
		return nil
	}
	if check := migrationChecks[m.version]; check != nil {
		if err := check(ctx, tx); err != nil {
			return fmt.Errorf("migrate %s: %w", m.name, err)
		}
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("migrate %s: %w", m.name, err)
	}
	if m.noForeignKeys {
		// Nothing enforced the references during the step: check them all before committing.
		var table string
		switch err := tx.QueryRowContext(ctx, `PRAGMA foreign_key_check`).Scan(&table, new(any), new(any), new(any)); {
		case err == nil:
			return fmt.Errorf("migrate %s: leaves a broken reference from table %s", m.name, table)
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("migrate %s: foreign key check: %w", m.name, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, fmtTime(time.Now())); err != nil {
		return fmt.Errorf("migrate %s: %w", m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate %s: %w", m.name, err)
	}
	return nil
}

// migrationChecks run before the migration of their version, in its transaction, to refuse
// with an error a person can act on where the SQL alone would fail with a bare constraint
// error.
var migrationChecks = map[int]func(ctx context.Context, tx *sql.Tx) error{
	6: checkCaseCollisions,
}

// checkCaseCollisions refuses 0006_usernames_nocase while usernames, or names of personal
// organizations, differ only in ASCII case: the new unique index cannot be built, and merging
// two accounts is a decision for a person.
func checkCaseCollisions(ctx context.Context, tx *sql.Tx) error {
	var groups []string
	for _, q := range []struct{ what, query string }{
		{"usernames", `SELECT group_concat(username, ', ' ORDER BY username) FROM users
			GROUP BY username COLLATE NOCASE HAVING COUNT(*) > 1 ORDER BY 1`},
		{"personal organization names", `SELECT group_concat(name, ', ' ORDER BY name) FROM organizations WHERE personal = 1
			GROUP BY name COLLATE NOCASE HAVING COUNT(*) > 1 ORDER BY 1`},
	} {
		rows, err := tx.QueryContext(ctx, q.query)
		if err != nil {
			return err
		}
		for rows.Next() {
			var g string
			if err := rows.Scan(&g); err != nil {
				rows.Close()
				return err
			}
			groups = append(groups, q.what+" "+g)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	if len(groups) > 0 {
		return fmt.Errorf("names must become unique ignoring case, but these differ only in case: %s; "+
			"rename all but one of each group and start again", strings.Join(groups, "; "))
	}
	return nil
}
