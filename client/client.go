// client.go holds the Client and its options: how one is made, configured and copied. The
// requests themselves are in request.go, the retry policy in retry.go, the routes in routes.go.

package client

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
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
	return headerOption("token", token, func(o *options) { o.token = token })
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
	return headerOption("user agent", ua, func(o *options) { o.userAgent = ua })
}

// headerOption is an option that sets a header's value: one without line breaks, which would
// let it smuggle other headers.
func headerOption(what, value string, set func(*options)) Option {
	return func(o *options) error {
		if strings.ContainsAny(value, "\r\n") {
			return fmt.Errorf("client: %s contains a line break", what)
		}
		set(o)
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
