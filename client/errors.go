package client

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/nexodus-sdk/nexodus/api"
)

// Sentinel errors matched by [APIError] through errors.Is.
var (
	ErrBadRequest    = errors.New("client: bad request")            // 400, api.CodeBadRequest
	ErrUnauthorized  = errors.New("client: unauthorized")           // 401, api.CodeUnauthorized
	ErrForbidden     = errors.New("client: forbidden")              // 403, api.CodeForbidden
	ErrNotFound      = errors.New("client: not found")              // 404, api.CodeNotFound
	ErrConflict      = errors.New("client: conflict")               // 409, api.CodeConflict
	ErrGone          = errors.New("client: gone")                   // 410, api.CodeGone
	ErrTooLarge      = errors.New("client: too large")              // 413, api.CodeTooLarge
	ErrPoolExhausted = errors.New("client: address pool exhausted") // 409, api.CodePoolExhausted
	ErrRateLimited   = errors.New("client: rate limited")           // 429, api.CodeRateLimited
	ErrInternal      = errors.New("client: internal server error")  // 500, api.CodeInternal
	ErrUnavailable   = errors.New("client: unavailable")            // 503, api.CodeUnavailable
)

var codeSentinels = map[string]error{
	api.CodeBadRequest:    ErrBadRequest,
	api.CodeUnauthorized:  ErrUnauthorized,
	api.CodeForbidden:     ErrForbidden,
	api.CodeNotFound:      ErrNotFound,
	api.CodeConflict:      ErrConflict,
	api.CodeGone:          ErrGone,
	api.CodeTooLarge:      ErrTooLarge,
	api.CodePoolExhausted: ErrPoolExhausted,
	api.CodeRateLimited:   ErrRateLimited,
	api.CodeInternal:      ErrInternal,
	api.CodeUnavailable:   ErrUnavailable,
}

var statusSentinels = map[int]error{
	http.StatusBadRequest:            ErrBadRequest,
	http.StatusUnauthorized:          ErrUnauthorized,
	http.StatusForbidden:             ErrForbidden,
	http.StatusNotFound:              ErrNotFound,
	http.StatusConflict:              ErrConflict,
	http.StatusGone:                  ErrGone,
	http.StatusRequestEntityTooLarge: ErrTooLarge,
	http.StatusTooManyRequests:       ErrRateLimited,
	http.StatusInternalServerError:   ErrInternal,
	http.StatusServiceUnavailable:    ErrUnavailable,
}

// APIError is a non-2xx answer of the coordinator. Code and Message come from the
// {"code","message"} error body; when the body is not one (a proxy's error page), Code is empty
// and Message describes the status.
//
// errors.Is(err, ErrX) reports whether the error's code is X's code or, when the code is empty
// or unknown, whether its status is X's status. A pool-exhausted error (code pool_exhausted,
// status 409) matches both ErrPoolExhausted and ErrConflict.
//
// Reason is set when the coordinator refused the credential for good (see api.Reason).
type APIError struct {
	StatusCode int
	Code       string
	Message    string
	Reason     api.Reason
}

func (e *APIError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%s (%s, HTTP %d)", e.Message, e.Code, e.StatusCode)
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.StatusCode)
}

// Is matches the sentinel errors of this package; see [APIError].
func (e *APIError) Is(target error) bool {
	if s, ok := codeSentinels[e.Code]; ok {
		if s == target {
			return true
		}
		// A more specific code still is a case of its status: pool_exhausted is a conflict.
		return e.Code == api.CodePoolExhausted && target == ErrConflict
	}
	s, ok := statusSentinels[e.StatusCode]
	return ok && s == target
}

// ClosedError is how an event stream ends when the coordinator ended it for good with an
// api.EventClosed event: the device was removed, the organization deleted, the token revoked
// or expired, ... Reconnecting with the same credential cannot help.
type ClosedError struct {
	Reason api.Reason
}

func (e *ClosedError) Error() string {
	return "the coordinator ended the stream: " + string(e.Reason)
}

// ReasonOf returns why the coordinator refused a credential or ended a stream for good, from
// an [*APIError] or a [*ClosedError] in err's chain; "" when err carries no reason.
func ReasonOf(err error) api.Reason {
	var ce *ClosedError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Reason
	}
	return ""
}
