package coordinator

// Domain errors: the sentinels callers branch on, and the one mapping from errors to HTTP
// statuses and api.Error bodies.

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// Sentinel errors of the domain layer. Every error a handler sees is matched against them with
// errors.Is by [statusOf], the one place that turns errors into HTTP statuses and api.Error codes.
var (
	ErrBadRequest       = errors.New("bad request")            // 400 bad_request
	ErrUnauthorized     = errors.New("unauthorized")           // 401 unauthorized
	ErrForbidden        = errors.New("forbidden")              // 403 forbidden
	ErrNotFound         = errors.New("not found")              // 404 not_found
	ErrMethodNotAllowed = errors.New("method not allowed")     // 405 bad_request
	ErrConflict         = errors.New("conflict")               // 409 conflict
	ErrGone             = errors.New("gone")                   // 410 gone
	ErrTooLarge         = errors.New("too large")              // 413 too_large
	ErrRateLimited      = errors.New("rate limited")           // 429 rate_limited, with Retry-After
	ErrPoolExhausted    = errors.New("address pool exhausted") // 409 pool_exhausted
	ErrUnavailable      = errors.New("unavailable")            // 503 unavailable

	// errClientGone marks a request whose client went away (its context ended) before the
	// answer was ready: nobody reads the answer and it is nobody's failure.
	errClientGone = errors.New("client went away")
)

// statusClientClosedRequest is the status recorded (in logs and for tests) for a request whose
// client disconnected before it was answered. It is nginx's 499: no client ever sees it.
const statusClientClosedRequest = 499

// Error is a domain error: one of the sentinel errors above (Kind) with a message for the
// client and, for a credential refused for good, the reason the client is told.
type Error struct {
	Kind   error
	Msg    string
	Reason api.Reason
}

func (e *Error) Error() string { return e.Msg }

// Unwrap lets errors.Is match the sentinel.
func (e *Error) Unwrap() error { return e.Kind }

// errorf makes a domain error of the given kind.
func errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// refusedf makes a domain error that refuses a credential for good, for the given reason.
func refusedf(kind error, reason api.Reason, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...), Reason: reason}
}

// statusOf maps an error to its HTTP status and body. It is the only such mapping.
func statusOf(err error) (int, api.Error) {
	status, body := statusAndBody(err)
	var de *Error
	if errors.As(err, &de) {
		body.Reason = de.Reason
	}
	return status, body
}

func statusAndBody(err error) (int, api.Error) {
	msg := func(def string) string {
		var de *Error
		if errors.As(err, &de) && de.Msg != "" {
			return de.Msg
		}
		return def
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, errClientGone):
		return statusClientClosedRequest, api.Error{Code: api.CodeCanceled, Message: "request canceled by the client"}
	case errors.Is(err, ErrPoolExhausted):
		return http.StatusConflict, api.Error{Code: api.CodePoolExhausted, Message: msg("address pool exhausted")}
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest, api.Error{Code: api.CodeBadRequest, Message: msg("bad request")}
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized, api.Error{Code: api.CodeUnauthorized, Message: msg("missing or invalid credential")}
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden, api.Error{Code: api.CodeForbidden, Message: msg("forbidden")}
	case errors.Is(err, ErrNotFound), errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, api.Error{Code: api.CodeNotFound, Message: msg("not found")}
	case errors.Is(err, ErrMethodNotAllowed):
		return http.StatusMethodNotAllowed, api.Error{Code: api.CodeBadRequest, Message: msg("method not allowed")}
	case errors.Is(err, ErrConflict), errors.Is(err, store.ErrConflict):
		return http.StatusConflict, api.Error{Code: api.CodeConflict, Message: msg("conflict")}
	case errors.Is(err, ErrGone):
		return http.StatusGone, api.Error{Code: api.CodeGone, Message: msg("gone")}
	case errors.Is(err, ErrTooLarge), errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, api.Error{Code: api.CodeTooLarge, Message: msg("request body too large")}
	case errors.Is(err, ErrRateLimited):
		return http.StatusTooManyRequests, api.Error{Code: api.CodeRateLimited, Message: msg("too many requests")}
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, api.Error{Code: api.CodeUnavailable, Message: msg("service unavailable")}
	default:
		return http.StatusInternalServerError, api.Error{Code: api.CodeInternal, Message: "internal error"}
	}
}

// notFound replaces store.ErrNotFound with a domain 404 carrying msg.
func notFound(err error, msg string) error {
	if errors.Is(err, store.ErrNotFound) {
		return errorf(ErrNotFound, "%s", msg)
	}
	return err
}

// conflict replaces store.ErrConflict with a domain 409 carrying a message.
func conflict(err error, format string, args ...any) error {
	if errors.Is(err, store.ErrConflict) {
		return errorf(ErrConflict, format, args...)
	}
	return err
}

// authErr turns "no such credential" into 401 and passes store failures through.
func authErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errBadCredential
	}
	return err
}
