// request.go holds how one API request is made: the route's URL, the JSON body, the headers,
// the answer decoded or turned into an *APIError, and the one place that wraps every error of
// a call as "client: OP: ...".

package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/nexodus-sdk/nexodus/api"
)

// Size limits for reading response bodies.
const (
	// MaxResponseBody bounds a successful JSON response (a large organization's peer list).
	MaxResponseBody = 32 << 20
	// maxErrorBody bounds the body of an error response.
	maxErrorBody = 64 << 10
)

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

// call sends one request whose answer is a JSON object and returns it decoded.
func call[T any](ctx context.Context, c *Client, op, method, rawURL string, in any) (*T, error) {
	out := new(T)
	if err := c.do(ctx, op, method, rawURL, in, out); err != nil {
		return nil, err
	}
	return out, nil
}

// list sends a GET whose answer is a JSON array and returns it decoded.
func list[T any](ctx context.Context, c *Client, op, rawURL string) ([]T, error) {
	var out []T
	if err := c.do(ctx, op, http.MethodGet, rawURL, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// do sends one API request. in, when non-nil, is sent as JSON; out, when non-nil, receives the
// decoded JSON of a 2xx response. Every error of a call is wrapped here, once, with the
// operation: "client: get device: device not found (not_found, HTTP 404)".
func (c *Client) do(ctx context.Context, op, method, rawURL string, in, out any) error {
	if err := c.send(ctx, method, rawURL, in, out); err != nil {
		return fmt.Errorf("client: %s: %w", op, err)
	}
	return nil
}

func (c *Client) send(ctx context.Context, method, rawURL string, in, out any) error {
	if ctx == nil {
		return errors.New("nil context")
	}
	var rawBody any // nil interface when there is no body
	if in != nil {
		body, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		if len(body) > api.MaxRequestBody {
			return tooLarge("request body", len(body), api.MaxRequestBody)
		}
		rawBody = body
	}
	req, err := retryablehttp.NewRequestWithContext(context.WithValue(ctx, methodKey{}, method), method, rawURL, rawBody)
	if err != nil {
		return err
	}
	c.setHeaders(req.Header)
	req.Header.Set("Accept", "application/json")
	if rawBody != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.rc.Do(req)
	if err != nil {
		if resp != nil {
			drain(resp.Body)
		}
		return err
	}
	defer drain(resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return readAPIError(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody+1))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if len(data) > MaxResponseBody {
		return fmt.Errorf("response body over %d bytes", MaxResponseBody)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}

// tooLarge is the error of a request the client refuses to send: the 413 the coordinator
// would answer.
func tooLarge(what string, n, limit int) *APIError {
	return &APIError{
		StatusCode: http.StatusRequestEntityTooLarge,
		Code:       api.CodeTooLarge,
		Message:    fmt.Sprintf("%s is %d bytes, over the limit of %d", what, n, limit),
	}
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
		e.Code, e.Message, e.Reason = body.Code, body.Message, body.Reason
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
