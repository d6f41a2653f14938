// Package client is a typed Go client for the Nexodus coordinator's HTTP API (package api
// holds the wire types): users and tokens, organizations and members, invitations,
// registration keys, devices, signaling, and resumable event streams.
//
// # Making a client
//
//	c, err := client.New("https://nexodus.example.com", client.WithToken(token))
//
// The token is any bearer credential the coordinator accepts: the admin token, a user API token
// (nxu_…), a registration key (nxk_…) or a device token (nxd_…). [Client.WithToken] derives a
// client with another credential that shares the connection pool, for example to act as a
// device after registering it:
//
//	resp, err := c.WithToken(regKey).RegisterDevice(ctx, api.RegisterDeviceRequest{...})
//	tok, err := client.OpenDeviceToken(wgPrivateKey, *resp)
//	dev := c.WithToken(tok)
//
// Every call takes a context first; the client sets no timeout of its own, so give calls a
// context with a deadline.
//
// # Retries
//
// Requests go through hashicorp/go-retryablehttp with a policy that retries only where it is
// safe: GET, PUT, DELETE and HEAD after a transport error, a 429 or a 5xx (except 501); POST and
// PATCH only when the connection could not be made at all, or on 429 and 503, where the server
// states it did nothing. Waits grow exponentially with jitter between the bounds of
// [WithRetry]; a Retry-After header on 429/503 sets the wait instead, and a Retry-After that
// would outlast the context's deadline ends the retries at once. When retries run out, the
// last answer is returned as an *APIError.
//
// # Errors
//
// A non-2xx answer is an [*APIError] carrying the status and the {"code","message"} body;
// errors.Is matches it against [ErrNotFound], [ErrForbidden], [ErrGone] and the other
// sentinels, by API code and, when the code is missing or unknown, by status. Every error is
// wrapped once, with the package and the operation, as in
// "client: get device: device not found (not_found, HTTP 404)".
//
// # Event streams
//
// [Client.WatchDevice] and [Client.WatchOrganization] return an [*EventStream] read with
// Next. A goroutine behind it keeps one Server-Sent Events connection open, treats a silent
// connection (no event, no heartbeat for WatchOptions.IdleTimeout) as dead, reconnects with
// backoff after any failure and resumes with Last-Event-ID, so the reader sees every event
// once and in order. Close stops the goroutine and waits for it; a second Close returns
// [ErrStreamClosed], which wraps net.ErrClosed.
//
// # Logging
//
// The client prints nothing. [WithLogger] routes request, retry and reconnect diagnostics to a
// [log/slog.Logger]; without it they are discarded.
package client
