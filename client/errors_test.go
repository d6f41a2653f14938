package client

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

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
			want := false
			for _, w := range tt.want {
				want = want || w == s
			}
			if got := errors.Is(err, s); got != want {
				t.Errorf("status %d code %q: errors.Is(%v) = %v, want %v", tt.status, tt.code, s, got, want)
			}
		}
		var ae *APIError
		if !errors.As(err, &ae) || ae.StatusCode != tt.status {
			t.Errorf("errors.As lost the *APIError: %v", err)
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
			if e.StatusCode != tt.status || e.Code != tt.code || (tt.msg != "" && e.Message != tt.msg) {
				t.Errorf("got %+v, want status %d code %q message %q", e, tt.status, tt.code, tt.msg)
			}
			if e.Message == "" {
				t.Errorf("empty message: %+v", e)
			}
		})
	}
}

func TestAPIErrorString(t *testing.T) {
	err := fmt.Errorf("get device: %w", &APIError{StatusCode: 404, Code: "not_found", Message: "device not found"})
	if got, want := err.Error(), "get device: device not found (not_found, HTTP 404)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
