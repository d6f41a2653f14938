package client

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/nexodus-sdk/nexodus/api"
)

func TestAPIErrorIs(t *testing.T) {
	all := []error{ErrBadRequest, ErrUnauthorized, ErrForbidden, ErrNotFound, ErrConflict, ErrGone,
		ErrTooLarge, ErrPoolExhausted, ErrInternal, ErrUnavailable}
	tests := []struct {
		status int
		code   string
		want   []error
	}{
		{400, api.CodeBadRequest, []error{ErrBadRequest}},
		{401, api.CodeUnauthorized, []error{ErrUnauthorized}},
		{403, api.CodeForbidden, []error{ErrForbidden}},
		{404, api.CodeNotFound, []error{ErrNotFound}},
		{409, api.CodeConflict, []error{ErrConflict}},
		{410, api.CodeGone, []error{ErrGone}},
		{413, api.CodeTooLarge, []error{ErrTooLarge}},
		{409, api.CodePoolExhausted, []error{ErrPoolExhausted, ErrConflict}},
		{500, api.CodeInternal, []error{ErrInternal}},
		{503, api.CodeUnavailable, []error{ErrUnavailable}},
		// The code wins over the status when both are known.
		{400, api.CodeNotFound, []error{ErrNotFound}},
		// Unknown or missing code: fall back to the status.
		{404, "", []error{ErrNotFound}},
		{403, "something_new", []error{ErrForbidden}},
		{502, "", nil},
		{418, "teapot", nil},
	}
	for _, tt := range tests {
		var err error = &APIError{StatusCode: tt.status, Code: tt.code, Message: "m"}
		err = fmt.Errorf("op: %w", err)
		for _, s := range all {
			want := slices.Contains(tt.want, s)
			assert.Equal(t, want, errors.Is(err, s), "status %d code %q: errors.Is(%v)", tt.status, tt.code, s)
		}
		var ae *APIError
		if assert.ErrorAs(t, err, &ae) {
			assert.Equal(t, tt.status, ae.StatusCode)
		}
	}
}

func TestReadAPIError(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		code   string
		msg    string
	}{
		{"json", 404, `{"code":"not_found","message":"no such device"}`, "not_found", "no such device"},
		{"json without message", 409, `{"code":"conflict"}`, "conflict", ""},
		{"plain text", 502, "upstream unavailable\n", "", "upstream unavailable"},
		{"html page", 502, "<html><body>Bad gateway</body></html>", "", "bad gateway"},
		{"empty", 503, "", "", "service unavailable"},
		{"unknown status", 599, "", "", "HTTP status 599"},
		{"huge body", 500, strings.Repeat("x", 1<<20), "", "internal server error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tt.status, Body: io.NopCloser(strings.NewReader(tt.body))}
			e := readAPIError(resp)
			assert.Equal(t, tt.status, e.StatusCode)
			assert.Equal(t, tt.code, e.Code)
			if tt.msg != "" {
				assert.Equal(t, tt.msg, e.Message)
			}
			assert.NotEmpty(t, e.Message)
		})
	}
}

// TestErrorMessages: every error of a call is wrapped once, with the package and the
// operation.
func TestErrorMessages(t *testing.T) {
	srv := newMemServer(func(n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"code":"not_found","message":"device not found"}`)
	})
	c := srv.client(t)
	_, err := c.GetDevice(t.Context(), "d1")
	assert.EqualError(t, err, "client: get device: device not found (not_found, HTTP 404)")
	assert.ErrorIs(t, err, ErrNotFound)
	assert.EqualError(t, c.DeleteRegKey(t.Context(), "k1"), "client: delete registration key: device not found (not_found, HTTP 404)")
	_, err = OpenDeviceToken([32]byte{}, api.RegisterDeviceResponse{})
	assert.EqualError(t, err, "client: open device token: response carries no sealed token")
	for _, s := range []error{ErrBadRequest, ErrUnauthorized, ErrForbidden, ErrNotFound, ErrConflict, ErrGone,
		ErrTooLarge, ErrPoolExhausted, ErrInternal, ErrUnavailable, ErrStreamClosed} {
		assert.True(t, strings.HasPrefix(s.Error(), "client: "), "sentinel %q", s)
	}
}
