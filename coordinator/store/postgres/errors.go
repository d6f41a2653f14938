package postgres

// How PostgreSQL's errors become the store's sentinels, and which ones call for a retry.

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// SQLSTATE codes (https://www.postgresql.org/docs/current/errcodes-appendix.html).
const (
	uniqueViolation      = "23505"
	foreignKeyViolation  = "23503"
	readOnlyTransaction  = "25006"
	serializationFailure = "40001"
	deadlockDetected     = "40P01"
)

// mapErr turns driver errors into the store's sentinels, keeping the original text.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case uniqueViolation:
			return fmt.Errorf("%w: %w", store.ErrConflict, err)
		case foreignKeyViolation:
			// A row refers to one that does not exist (an unknown organization or user).
			return fmt.Errorf("%w: %w", store.ErrNotFound, err)
		case readOnlyTransaction:
			return fmt.Errorf("%w: %w", store.ErrReadOnly, err)
		}
	}
	return err
}

// retryable reports a failure that running the transaction again may avoid.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == serializationFailure || pe.Code == deadlockDetected)
}

// duplicateKey names the constraint and key of a uniqueness violation in err's chain, "" when
// there is none.
func duplicateKey(err error) string {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != uniqueViolation {
		return ""
	}
	return pe.ConstraintName + " " + pe.Detail
}
