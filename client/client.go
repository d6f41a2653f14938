package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/nexodus-sdk/nexodus/api"
)

// Defaults of the retry policy; see [WithRetry].
const (
	DefaultRetryMax     = 4
	DefaultRetryWaitMin = 250 * time.Millisecond
	DefaultRetryWaitMax = 5 * time.Second
)

// DefaultUserAgent is sent unless [WithUserAgent] sets another.
const DefaultUserAgent = "nexodus-client/1"

// Size limits for reading response bodies.
const (
	// MaxResponseBody bounds a successful JSON response (a large organization's peer list).
	MaxResponseBody = 32 << 20
	// maxErrorBody bounds the body of an error response.
	maxErrorBody = 64 << 10
	// maxRetryAfter is the longest Retry-After the client will wait for on its own; a longer one
	// ends the retries and the caller gets the 429/503 as an *APIError.
	maxRetryAfter = 2 * time.Minute
)

// Client talks to a Nexodus coordinator. It is safe for concurrent use. A Client is immutable
// once made: [Client.WithToken] returns a copy with another credential that shares the
// connection pool.
type Client struct {
	base      *url.URL // scheme://host[/path], without a trailing slash and without api.Prefix
	token     string
	userAgent string
	logger    *slog.Logger
	hc        *http.Client // the caller's or our own; the retrying client sends through it
	streamHC  *http.Client // hc without Timeout, for long-lived event streams
	rc        *retryablehttp.Client
}

// Option configures a [Client] made by [New].
type Option func(*options) error

type options struct {
	token     string
	hc        *http.Client
	logger    *slog.Logger
	retryMax  int
	waitMin   time.Duration
	waitMax   time.Duration
	userAgent string
}

// WithToken sets the bearer token sent with every request: the admin token, a user API token,
// a registration key or a device token.
func WithToken(token string) Option {
	return func(o *options) error {
		if strings.ContainsAny(token, "\r\n") {
			return errors.New("client: token contains a line break")
		}
		o.token = token
		return nil
	}
}

// WithHTTPClient sets the HTTP client used for every request (for TLS settings, proxies or a
// test transport). Its Timeout, if any, applies to API calls only: event streams are long-lived
// and use a copy without Timeout, bounded by their context and idle timeout instead. Without
// this option the client uses a pooled transport of its own and no timeout; give each call a
// context with a deadline.
func WithHTTPClient(hc *http.Client) Option {
	return func(o *options) error {
		if hc == nil {
			return errors.New("client: nil *http.Client")
		}
		o.hc = hc
		return nil
	}
}

// WithLogger sets the logger for request, retry and reconnect diagnostics (at debug and warn
// level). Without it the client logs nothing.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		o.logger = l
		return nil
	}
}

// WithRetry sets how many times a failed request is retried (0 disables retries) and the
// bounds of the exponential backoff between attempts. A Retry-After header on a 429 or 503
// takes precedence over the backoff.
func WithRetry(max int, minWait, maxWait time.Duration) Option {
	return func(o *options) error {
		if max < 0 || minWait < 0 || maxWait < minWait {
			return fmt.Errorf("client: invalid retry settings (max %d, wait %v..%v)", max, minWait, maxWait)
		}
		o.retryMax, o.waitMin, o.waitMax = max, minWait, maxWait
		return nil
	}
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option {
	return func(o *options) error {
		if strings.ContainsAny(ua, "\r\n") {
			return errors.New("client: user agent contains a line break")
		}
		o.userAgent = ua
		return nil
	}
}

// New returns a client for the coordinator at baseURL, for example "https://nexodus.example.com"
// or "http://127.0.0.1:8080". A path in baseURL is kept as a prefix (for a coordinator behind a
// reverse proxy); a trailing "/api/v1" is accepted and ignored.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("client: base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("client: base URL %q: scheme must be http or https", baseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("client: base URL %q has no host", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("client: base URL %q must not carry a query, fragment or user info", baseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.Path = strings.TrimSuffix(u.Path, api.Prefix)
	u.RawPath = ""

	o := options{
		retryMax:  DefaultRetryMax,
		waitMin:   DefaultRetryWaitMin,
		waitMax:   DefaultRetryWaitMax,
		userAgent: DefaultUserAgent,
	}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.hc == nil {
		o.hc = &http.Client{Transport: cleanhttp.DefaultPooledTransport()}
	}
	logger := o.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	rc := &retryablehttp.Client{
		HTTPClient:   o.hc,
		RetryMax:     o.retryMax,
		RetryWaitMin: o.waitMin,
		RetryWaitMax: o.waitMax,
		CheckRetry:   checkRetry,
		Backoff:      backoff,
		// Give the caller the last response itself (mapped to an *APIError) instead of
		// retryablehttp's "giving up after N attempts" error that hides the status.
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	if o.logger != nil {
		rc.Logger = slogAdapter{o.logger}
	} // else nil: retryablehttp logs nothing

	streamHC := *o.hc
	streamHC.Timeout = 0
	return &Client{
		streamHC:  &streamHC,
		base:      u,
		token:     o.token,
		userAgent: o.userAgent,
		logger:    logger,
		hc:        o.hc,
		rc:        rc,
	}, nil
}

// WithToken returns a copy of c that authenticates with token; the copy shares c's connection
// pool and settings. Use it to act as a device after registering it, or as another user.
func (c *Client) WithToken(token string) *Client {
	cp := *c
	cp.token = strings.NewReplacer("\r", "", "\n", "").Replace(token)
	return &cp
}

// CloseIdleConnections closes the idle keep-alive connections of the client's pool (shared
// with the copies WithToken made). Call it when done with the client, so that no connection
// and no goroutine of the HTTP transport outlives its user.
func (c *Client) CloseIdleConnections() {
	c.hc.CloseIdleConnections()
}

// BaseURL returns the coordinator URL the client talks to.
func (c *Client) BaseURL() string { return c.base.String() }

// slogAdapter routes retryablehttp's leveled logging to slog. Request failures are logged at
// warn level: the caller gets the error anyway.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Error(msg string, kv ...any) { a.l.Warn("client: "+msg, kv...) }
func (a slogAdapter) Info(msg string, kv ...any)  { a.l.Info("client: "+msg, kv...) }
func (a slogAdapter) Debug(msg string, kv ...any) { a.l.Debug("client: "+msg, kv...) }
func (a slogAdapter) Warn(msg string, kv ...any)  { a.l.Warn("client: "+msg, kv...) }

type methodKey struct{}

// idempotent reports whether a request with this method may be repeated without changing the
// outcome.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodOptions:
		return true
	}
	return false
}

// checkRetry is the retry policy. The request's method travels in its context (retryablehttp
// hands CheckRetry only the context, and no response on transport errors).
//
//   - Idempotent methods are retried on transport errors, 429 and 5xx (except 501).
//   - POST and PATCH are retried only when the request certainly did not reach the server
//     (the connection could not be made) or when the server says it did nothing (429, 503).
//   - Nothing is retried once ctx is done, or when a Retry-After asks for a wait that does not
//     fit before ctx's deadline (or exceeds maxRetryAfter): the caller gets that response.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	method, _ := ctx.Value(methodKey{}).(string)
	if err != nil {
		if !retryableTransportError(err) {
			return false, nil
		}
		return idempotent(method) || notSent(err), nil
	}
	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		if ra, ok := retryAfter(resp); ok {
			if ra > maxRetryAfter {
				return false, nil
			}
			if dl, ok := ctx.Deadline(); ok && time.Now().Add(ra).After(dl) {
				return false, nil
			}
		}
		return true, nil
	case code >= 500 && code != http.StatusNotImplemented:
		return idempotent(method), nil
	}
	return false, nil
}

// retryableTransportError reports whether a transport error may be transient: not a TLS
// verification failure, an unsupported scheme, an invalid header or a redirect loop.
func retryableTransportError(err error) bool {
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return false
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		msg := ue.Err.Error()
		for _, s := range []string{"stopped after", "unsupported protocol scheme", "invalid header", "certificate"} {
			if strings.Contains(msg, s) {
				return false
			}
		}
	}
	return true
}

// notSent reports whether err means the request never left the client: the connection could not
// be established (refused, unreachable, DNS failure).
func notSent(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(resp *http.Response) (time.Duration, bool) {
	h := resp.Header.Get("Retry-After")
	if h == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(strings.TrimSpace(h), 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		if s > int64(maxRetryAfter/time.Second)+1 {
			return maxRetryAfter + time.Second, true
		}
		return time.Duration(s) * time.Second, true
	}
	t, err := http.ParseTime(h)
	if err != nil {
		return 0, false
	}
	return max(time.Until(t), 0), true
}

// backoff honours Retry-After on 429 and 503, and otherwise waits an exponentially growing,
// jittered time between min and max ("equal jitter": half fixed, half random).
func backoff(minWait, maxWait time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if ra, ok := retryAfter(resp); ok {
			return ra
		}
	}
	return jitteredBackoff(minWait, maxWait, attempt)
}

// jitteredBackoff returns a wait in [d/2, d] where d = min(max, min·2^attempt).
func jitteredBackoff(minWait, maxWait time.Duration, attempt int) time.Duration {
	if minWait <= 0 {
		return 0
	}
	d := maxWait
	if attempt < 32 {
		if e := minWait << attempt; e > 0 && e < maxWait {
			d = e
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// url builds the URL of an API route: segments are joined with "/" after path-escaping each
// one, under base + api.Prefix.
func (c *Client) url(segments ...string) string {
	var b strings.Builder
	b.WriteString(api.Prefix)
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return c.rawURL(b.String())
}

// rawURL resolves an escaped absolute path against the base URL.
func (c *Client) rawURL(escapedPath string) string {
	u := *c.base
	u.RawPath = ""
	u.Path = ""
	return u.String() + c.base.EscapedPath() + escapedPath
}

// do sends one API request. in, when non-nil, is sent as JSON; out, when non-nil, receives the
// decoded JSON of a 2xx response. Errors are wrapped with op.
func (c *Client) do(ctx context.Context, op, method, rawURL string, in, out any) error {
	if ctx == nil {
		return fmt.Errorf("%s: nil context", op)
	}
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("%s: encode request: %w", op, err)
		}
		if len(body) > api.MaxRequestBody {
			return fmt.Errorf("%s: %w", op, &APIError{
				StatusCode: http.StatusRequestEntityTooLarge,
				Code:       api.CodeTooLarge,
				Message:    fmt.Sprintf("request body is %d bytes, over the limit of %d", len(body), api.MaxRequestBody),
			})
		}
	}
	ctx = context.WithValue(ctx, methodKey{}, method)
	var rawBody any // nil interface when there is no body
	if body != nil {
		rawBody = body
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, rawURL, rawBody)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	c.setHeaders(req.Header)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.rc.Do(req)
	if err != nil {
		if resp != nil {
			drain(resp.Body)
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	defer drain(resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s: %w", op, readAPIError(resp))
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody+1))
	if err != nil {
		return fmt.Errorf("%s: read response: %w", op, err)
	}
	if len(data) > MaxResponseBody {
		return fmt.Errorf("%s: response body over %d bytes", op, MaxResponseBody)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s: decode response: %w", op, err)
	}
	return nil
}

func (c *Client) setHeaders(h http.Header) {
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	if c.userAgent != "" {
		h.Set("User-Agent", c.userAgent)
	}
}

// drain reads a little of what is left of a body, so the connection can be reused, and closes it.
func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 4<<10))
	_ = body.Close()
}

// readAPIError turns a non-2xx response into an *APIError, reading at most maxErrorBody bytes.
func readAPIError(resp *http.Response) *APIError {
	e := &APIError{StatusCode: resp.StatusCode}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body api.Error
	if json.Unmarshal(data, &body) == nil && (body.Code != "" || body.Message != "") {
		e.Code, e.Message = body.Code, body.Message
	} else if s := strings.TrimSpace(string(bytes.ToValidUTF8(data, nil))); s != "" && len(s) <= 512 && !strings.ContainsAny(s, "<>") {
		// A plain-text error from something in front of the coordinator (a proxy).
		e.Message = s
	}
	if e.Message == "" {
		e.Message = strings.ToLower(http.StatusText(resp.StatusCode))
		if e.Message == "" {
			e.Message = "HTTP status " + strconv.Itoa(resp.StatusCode)
		}
	}
	return e
}
