// memserver_test.go holds memServer, the in-memory HTTP server of the package's unit tests,
// and the clients that talk to it.

package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// memServer serves HTTP in memory: it is an http.RoundTripper that runs handler for each
// request on a goroutine of its own and streams the answer back through a pipe. Unlike
// httptest.Server it opens no socket, so a test may run inside a synctest bubble, where a
// backoff, a Retry-After or an idle timeout takes no real time and lasts exactly as long as
// the code asked: the times recorded in requests are the bubble's virtual clock.
//
// handler gets the request's number n (from 1). A handler that panics with
// http.ErrAbortHandler cuts its answer short, as a dropped connection would. A handler that
// waits should wait for r.Context(): it ends when the client gives up on the request.
type memServer struct {
	handler func(n int, w http.ResponseWriter, r *http.Request)

	mu   sync.Mutex
	reqs []memRequest
}

// memRequest is what arrived, and when.
type memRequest struct {
	at     time.Time
	method string
	path   string // escaped
	header http.Header
	body   []byte
}

func newMemServer(handler func(n int, w http.ResponseWriter, r *http.Request)) *memServer {
	return &memServer{handler: handler}
}

// client returns a client of the server, authenticated with "tok", that retries quickly
// (retries happen in virtual time anyway) unless opts say otherwise.
func (s *memServer) client(t *testing.T, opts ...Option) *Client {
	t.Helper()
	return newTestClient(t, "http://mem.test", append([]Option{WithHTTPClient(&http.Client{Transport: s})}, opts...)...)
}

func newTestClient(t *testing.T, url string, opts ...Option) *Client {
	t.Helper()
	c, err := New(url, append([]Option{WithToken("tok")}, opts...)...)
	require.NoError(t, err)
	return c
}

// requests returns what arrived so far.
func (s *memServer) requests() []memRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]memRequest(nil), s.reqs...)
}

// count is the number of requests so far.
func (s *memServer) count() int { return len(s.requests()) }

// gaps returns the time between each request and the next.
func (s *memServer) gaps() []time.Duration {
	reqs := s.requests()
	var out []time.Duration
	for i := 1; i < len(reqs); i++ {
		out = append(out, reqs[i].at.Sub(reqs[i-1].at))
	}
	return out
}

// header returns header name of every request so far.
func (s *memServer) header(name string) []string {
	var out []string
	for _, r := range s.requests() {
		out = append(out, r.header.Get(name))
	}
	return out
}

func (s *memServer) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := r.Context().Err(); err != nil {
		return nil, err // a real transport does not dial for a request already canceled
	}
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, memRequest{at: time.Now(), method: r.Method, path: r.URL.EscapedPath(), header: r.Header.Clone(), body: body})
	n := len(s.reqs)
	s.mu.Unlock()

	in := r.Clone(r.Context())
	in.Body = io.NopCloser(bytes.NewReader(body))
	pr, pw := io.Pipe()
	w := &memWriter{header: http.Header{}, started: make(chan struct{}), body: pw}
	go func() {
		defer func() {
			cut := recover()
			if cut != nil && cut != http.ErrAbortHandler {
				panic(cut)
			}
			w.WriteHeader(http.StatusOK)
			if cut != nil {
				pw.CloseWithError(io.ErrUnexpectedEOF)
			} else {
				pw.Close()
			}
		}()
		s.handler(n, w, in)
	}()
	ctx := r.Context()
	select {
	case <-w.started:
	case <-ctx.Done():
		pr.CloseWithError(ctx.Err())
		return nil, ctx.Err()
	}
	stop := context.AfterFunc(ctx, func() { pr.CloseWithError(ctx.Err()) })
	return &http.Response{
		Status:     fmt.Sprintf("%d %s", w.status, http.StatusText(w.status)),
		StatusCode: w.status,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        w.sent,
		Body:          &memBody{PipeReader: pr, stop: stop},
		ContentLength: -1,
		Request:       r,
	}, nil
}

// memWriter is a handler's http.ResponseWriter: the status and header go out with the first
// write or flush, the body through the pipe.
type memWriter struct {
	header  http.Header
	once    sync.Once
	started chan struct{} // closed once status and sent are set
	status  int
	sent    http.Header
	body    *io.PipeWriter
}

func (w *memWriter) Header() http.Header { return w.header }

func (w *memWriter) WriteHeader(code int) {
	w.once.Do(func() {
		w.status, w.sent = code, w.header.Clone()
		close(w.started)
	})
}

func (w *memWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

func (w *memWriter) Flush() { w.WriteHeader(http.StatusOK) }

type memBody struct {
	*io.PipeReader
	stop func() bool
}

func (b *memBody) Close() error {
	b.stop()
	return b.PipeReader.Close()
}

// statuses is a handler that answers the i-th request (from 1) with codes[i-1], the last one
// repeating, and header; errors carry a JSON error body, successes a device.
func statuses(header http.Header, codes ...int) func(int, http.ResponseWriter, *http.Request) {
	return func(n int, w http.ResponseWriter, r *http.Request) {
		code := codes[min(n, len(codes))-1]
		for k, v := range header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		if code >= 300 {
			_, _ = io.WriteString(w, `{"message":"try later"}`)
			return
		}
		_, _ = io.WriteString(w, `{"id":"d1","hostname":"h"}`)
	}
}
