package postgres

// How PostgreSQL's errors become the store's sentinels, and which ones call for a retry.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

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
	adminShutdown        = "57P01" // pg_terminate_backend, or a fast shutdown
	crashShutdown        = "57P02"
	cannotConnectNow     = "57P03" // starting up, shutting down
	tooManyConnections   = "53300"
)

// mapErr turns driver errors into the store's sentinels, keeping the original text.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	if unavailable(err) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
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

// unavailable reports a failure to reach the server or a refusal to serve: a failed connect
// (refused, timed out, the database not accepting connections), a connection lost mid-way, or
// the server shutting down or starting up. Not a statement's own failure.
func unavailable(err error) bool {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || // connection exception
			pe.Code == adminShutdown || pe.Code == crashShutdown || pe.Code == cannotConnectNow ||
			pe.Code == tooManyConnections
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, pgconn.ErrConnClosed) || pgconn.SafeToRetry(err)
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
