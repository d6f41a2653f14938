package coordinator

// HTTP plumbing shared by every route: authentication before the handler, error bodies and
// their logging, JSON in and out, and API error bodies for the mux's own 404 and 405.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
)

// handler is a route's handler: it returns an error instead of writing one.
type handler func(w http.ResponseWriter, r *http.Request, p Principal) error

// ServeHTTP serves the whole API, /healthz and /readyz.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	var pattern string
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
			if !sw.wroteHeader {
				s.writeError(sw, r, fmt.Errorf("panic: %v", v))
			}
		}
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", sw.statusCode(), "duration", time.Since(start))
		s.metrics.observeRequest(pattern, sw.statusCode(), time.Since(start))
	}()
	if _, pattern = s.mux.Handler(r); pattern == "" {
		// No route: let the mux decide between 404, 405 and a path-cleaning redirect, and
		// give 404/405 the API's error body. Its cost is its source address's.
		if err := s.limitUnauthenticated(r); err != nil {
			s.writeError(sw, r, err)
			return
		}
		s.mux.ServeHTTP(&muxErrorWriter{statusWriter: sw, s: s, r: r}, r)
		return
	}
	s.mux.ServeHTTP(sw, r)
}

// authed wraps a route handler with authentication, the route's credential check and error
// writing.
func (s *Server) authed(n need, h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
		if err == nil {
			err = n.check(p)
		}
		if err == nil {
			err = s.limitRequest(p)
		}
		if err == nil {
			err = h(w, r, p)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	})
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, body := statusOf(err)
	if status >= 500 && r.Context().Err() != nil {
		// The request's own context ended (the client disconnected): the failure is its
		// consequence — context.Canceled, or the store's interrupted query — not ours.
		s.log.Debug("client went away", "method", r.Method, "path", r.URL.Path, "err", err)
		status, body = statusOf(fmt.Errorf("%w: %w", errClientGone, err))
	}
	switch {
	case status == statusClientClosedRequest:
	case status >= 500:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	case status == http.StatusUnauthorized:
		s.log.Warn("unauthorized request", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
	default:
		s.log.Debug("request rejected", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="nexodus"`)
	}
	setRetryAfter(w, err)
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b []byte
	var err error
	if raw, ok := v.(rawJSON); ok {
		b = raw // JSON already (the peer list): json.Marshal would only check and copy it
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(api.Error{Code: api.CodeInternal, Message: "cannot encode response"})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// noContent is the result of a domain function that answers nothing: 204 without a body.
type noContent struct{}

// reply writes v as JSON with status (204 without a body for noContent), or returns err for
// the route to write.
func reply(w http.ResponseWriter, status int, v any, err error) error {
	if err != nil {
		return err
	}
	if _, ok := v.(noContent); ok {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	writeJSON(w, status, v)
	return nil
}

// pathID reads and validates the path parameter name.
func pathID(r *http.Request, name, what string) (string, error) {
	id := r.PathValue(name)
	return id, checkID(what, id)
}

// decodeJSON reads the request body as exactly one JSON value into dst: at most
// api.MaxRequestBody bytes, no unknown fields, nothing after the value. An empty body is an
// error unless optional is set, in which case dst is left untouched.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any, optional bool) error {
	body := http.MaxBytesReader(w, r.Body, api.MaxRequestBody)
	return decodeJSONReader(body, dst, optional)
}

func decodeJSONReader(body io.Reader, dst any, optional bool) error {
	tooLarge := func(err error) bool {
		var mbe *http.MaxBytesError
		return errors.As(err, &mbe)
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		switch {
		case tooLarge(err):
			return errorf(ErrTooLarge, "request body larger than %d bytes", api.MaxRequestBody)
		case errors.Is(err, io.EOF):
			if optional {
				return nil
			}
			return errorf(ErrBadRequest, "request body is empty")
		default:
			return errorf(ErrBadRequest, "malformed JSON body: %s", jsonErrMessage(err))
		}
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if tooLarge(err) {
			return errorf(ErrTooLarge, "request body larger than %d bytes", api.MaxRequestBody)
		}
		return errorf(ErrBadRequest, "unexpected data after the JSON body")
	}
	return nil
}

// jsonErrMessage shortens decoder errors to something safe and useful to echo back.
func jsonErrMessage(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "json: ")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// statusWriter records the status of a response. Unwrap lets http.ResponseController reach the
// connection for flushing and write deadlines.
type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status = code
		w.wroteHeader = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher for callers that type-assert.
func (w *statusWriter) Flush() {
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) statusCode() int {
	if !w.wroteHeader {
		return http.StatusOK
	}
	return w.status
}

// muxErrorWriter replaces the mux's plain-text 404 and 405 responses with API error bodies.
type muxErrorWriter struct {
	*statusWriter
	s         *Server
	r         *http.Request
	swallowed bool
}

func (w *muxErrorWriter) WriteHeader(code int) {
	if w.swallowed || w.wroteHeader {
		return
	}
	switch code {
	case http.StatusNotFound:
		w.swallowed = true
		w.Header().Del("X-Content-Type-Options")
		w.s.writeError(w.statusWriter, w.r, errorf(ErrNotFound, "no such route"))
	case http.StatusMethodNotAllowed:
		w.swallowed = true
		w.s.writeError(w.statusWriter, w.r, errorf(ErrMethodNotAllowed, "method %s not allowed here", w.r.Method))
	default:
		w.statusWriter.WriteHeader(code)
	}
}

func (w *muxErrorWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader && !w.swallowed {
		w.WriteHeader(http.StatusOK)
	}
	if w.swallowed {
		return len(b), nil
	}
	return w.statusWriter.Write(b)
}

var _ io.Writer = (*muxErrorWriter)(nil)
