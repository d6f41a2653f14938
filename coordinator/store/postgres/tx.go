package postgres

// The transaction type behind store.Tx and the ways its methods touch the database: write (a
// statement in a savepoint, optionally of exactly one row), get (one row) and list (rows).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
	"github.com/nexodus-sdk/nexodus/coordinator/store/internal/watch"
)

// tx implements store.Tx on one PostgreSQL transaction; its methods live in the file of their
// table.
type tx struct {
	tx      pgx.Tx
	changes watch.Changes // what was appended: NOTIFYed just before commit
	retry   error         // a serialization failure or deadlock seen: the attempt must be retried
}

var _ store.Tx = (*tx)(nil)

// note remembers a failure that dooms the attempt, whatever fn does with the error.
func (t *tx) note(err error) {
	if t.retry == nil && retryable(err) {
		t.retry = err
	}
}

// write runs one statement in a savepoint, all in one round trip, so that its failure rolls
// back only the statement and the transaction stays usable (PostgreSQL aborts the whole
// transaction otherwise). With scan, the statement's one row (RETURNING) is scanned; no row
// is store.ErrNotFound. With mustAffect, changing no row is store.ErrNotFound.
func (t *tx) write(ctx context.Context, what string, mustAffect bool, scan func(pgx.Row) error, query string, args ...any) error {
	b := &pgx.Batch{}
	b.Queue(`SAVEPOINT write`)
	b.Queue(query, args...)
	b.Queue(`RELEASE SAVEPOINT write`)
	br := t.tx.SendBatch(ctx, b)
	var tag pgconn.CommandTag
	_, err := br.Exec()
	if err == nil {
		if scan != nil {
			err = scan(br.QueryRow())
			if errors.Is(err, pgx.ErrNoRows) {
				// Not a failed statement: the release still runs, and nothing is rolled back.
				_, rerr := br.Exec()
				cerr := br.Close()
				if e := errors.Join(rerr, cerr); e != nil {
					t.note(e)
					return fmt.Errorf("%s: %w", what, mapErr(e))
				}
				return fmt.Errorf("%s: %w", what, store.ErrNotFound)
			}
		} else {
			tag, err = br.Exec()
		}
	}
	if err == nil {
		_, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.note(err)
		if _, rerr := t.tx.Exec(ctx, `ROLLBACK TO SAVEPOINT write; RELEASE SAVEPOINT write`); rerr != nil {
			t.note(rerr)
			return fmt.Errorf("%s: %w (and the transaction could not go on: %v)", what, mapErr(err), rerr)
		}
		return fmt.Errorf("%s: %w", what, mapErr(err))
	}
	if mustAffect && scan == nil && tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// exec is write without a row to scan.
func (t *tx) exec(ctx context.Context, what string, mustAffect bool, query string, args ...any) error {
	return t.write(ctx, what, mustAffect, nil, query, args...)
}

// execCount runs a statement that returns its count of changed rows as one row.
func (t *tx) execCount(ctx context.Context, what, query string, args ...any) (int64, error) {
	var n int64
	err := t.write(ctx, what, false, func(r pgx.Row) error { return r.Scan(&n) }, query, args...)
	return n, err
}

// list runs a query and scans every row with scan.
func list[T any](ctx context.Context, t *tx, what string, scan func(pgx.Row) (T, error), query string, args ...any) ([]T, error) {
	rows, err := t.tx.Query(ctx, query, args...)
	if err != nil {
		t.note(err)
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
		t.note(err)
		return nil, fmt.Errorf("%s: %w", what, mapErr(err))
	}
	return out, nil
}

// get runs a single-row query; no row is store.ErrNotFound.
func get[T any](ctx context.Context, t *tx, what string, scan func(pgx.Row) (T, error), query string, args ...any) (T, error) {
	v, err := scan(t.tx.QueryRow(ctx, query, args...))
	if err != nil {
		t.note(err)
		var zero T
		return zero, fmt.Errorf("%s: %w", what, mapErr(err))
	}
	return v, nil
}

// scanned adapts a function that scans into a record to a scan function of list and get.
func scanned[T any](into func(r pgx.Row, v *T) error) func(pgx.Row) (T, error) {
	return func(r pgx.Row) (T, error) {
		var v T
		err := into(r, &v)
		return v, err
	}
}

// notify sends one NOTIFY per organization appended to, inside the transaction, so that
// PostgreSQL delivers them when (and only if) it commits.
func (t *tx) notify(ctx context.Context) error {
	changes := t.changes.List()
	if len(changes) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, c := range changes {
		b.Queue(`SELECT pg_notify($1, $2)`, channel, encodeChange(c))
	}
	if err := t.tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("postgres: notify: %w", mapErr(err))
	}
	return nil
}

// nullIfEmpty stores "" as NULL in columns where uniqueness must ignore unset values, or that
// refer to a user only once there is one.
func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// nonNilBytes keeps a NOT NULL bytea column from being NULL: nil and empty are one value.
func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// nonNilStrings keeps a NOT NULL text[] column from being NULL.
func nonNilStrings(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// jsonText encodes v for a jsonb parameter.
func jsonText(v any) string {
	b, _ := json.Marshal(v) // cannot fail: the callers pass lists of strings and structs of strings
	return string(b)
}
