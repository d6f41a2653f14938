package sqlite

// The transaction type behind store.Tx and the three ways its methods touch the database:
// exec (a write, optionally of exactly one row), get (one row) and list (rows).

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
	"github.com/nexodus-sdk/nexodus/coordinator/store/internal/watch"
)

// tx implements store.Tx on one SQLite transaction; its methods live in the file of their
// table.
type tx struct {
	tx      *sql.Tx
	changes watch.Changes // what was appended: watchers hear of it after commit
}

var _ store.Tx = (*tx)(nil)

// scanner is what *sql.Row and *sql.Rows have in common.
type scanner interface{ Scan(dest ...any) error }

// exec runs a statement that must change exactly one row when mustAffect is set; zero rows
// affected then means the target does not exist.
func (t *tx) exec(ctx context.Context, what string, mustAffect bool, query string, args ...any) error {
	res, err := t.tx.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, mapErr(err))
	}
	if mustAffect {
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if n == 0 {
			return fmt.Errorf("%s: %w", what, store.ErrNotFound)
		}
	}
	return nil
}

// execCount runs a statement and returns how many rows it changed.
func (t *tx) execCount(ctx context.Context, what, query string, args ...any) (int64, error) {
	res, err := t.tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, mapErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return n, nil
}

// list runs a query and scans every row with scan.
func list[T any](ctx context.Context, t *tx, what string, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := t.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, mapErr(err))
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, mapErr(err))
	}
	return out, nil
}

// get runs a single-row query; no row is store.ErrNotFound.
func get[T any](ctx context.Context, t *tx, what string, scan func(scanner) (T, error), query string, args ...any) (T, error) {
	v, err := scan(t.tx.QueryRowContext(ctx, query, args...))
	if err != nil {
		var zero T
		return zero, fmt.Errorf("%s: %w", what, mapErr(err))
	}
	return v, nil
}

// scanned adapts a function that scans into a record to a scan function of list and get.
func scanned[T any](into func(sc scanner, v *T) error) func(scanner) (T, error) {
	return func(sc scanner) (T, error) {
		var v T
		err := into(sc, &v)
		return v, err
	}
}

// scanString scans a one-column row of text.
var scanString = scanned(func(sc scanner, s *string) error { return sc.Scan(s) })

// nullIfEmpty stores "" as NULL in columns where uniqueness must ignore unset values.
func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// placeholders is "?, ?, ..." for each column of cols ("a, b, c").
func placeholders(cols string) string {
	return strings.Repeat("?, ", strings.Count(cols, ",")) + "?"
}

// assignments is "a = ?, b = ?, ..." for each column of cols ("a, b, c").
func assignments(cols string) string {
	return strings.ReplaceAll(cols, ",", " = ?,") + " = ?"
}
