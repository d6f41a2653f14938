// retry.go holds the retry policy of API requests: which failures are retried (checkRetry),
// how long to wait before the next attempt (backoff, Retry-After) and the logging adapter that
// reports retries.

package client

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxRetryAfter is the longest Retry-After the client will wait for on its own; a longer one
// ends the retries and the caller gets the 429/503 as an *APIError.
const maxRetryAfter = 2 * time.Minute

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
