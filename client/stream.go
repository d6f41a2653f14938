package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
)

// Defaults of [WatchOptions].
const (
	DefaultIdleTimeout  = 45 * time.Second
	DefaultMinBackoff   = 500 * time.Millisecond
	DefaultMaxBackoff   = 30 * time.Second
	DefaultMaxEventSize = 16 << 20
)

// ErrStreamClosed is returned by [EventStream.Next] after [EventStream.Close], and by every
// Close after the first. It wraps net.ErrClosed, as a closed connection's errors do.
var ErrStreamClosed = fmt.Errorf("client: event stream closed: %w", net.ErrClosed)

// errIdle reports a connection on which nothing, not even a heartbeat, arrived in time.
var errIdle = errors.New("no data from the coordinator within the idle timeout")

// errReconnect reports a connection dropped on request (EventStream.Reconnect).
var errReconnect = errors.New("reconnect requested")

// WatchOptions configure an event stream. The zero value is ready to use.
type WatchOptions struct {
	// AfterRevision resumes after this revision, as if the stream had already delivered it.
	// 0 starts a fresh stream, which begins with an api.EventSync event carrying the full
	// device list.
	AfterRevision int64
	// IdleTimeout is how long a connection may stay silent (no event and no heartbeat) before it
	// is considered dead and replaced; it also bounds the wait for the response headers.
	// 0 means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MinBackoff and MaxBackoff bound the exponential, jittered wait between reconnection
	// attempts. The wait starts over after a healthy connection (one that carried at least one
	// event or heartbeat). 0 means DefaultMinBackoff / DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// MaxEventSize bounds one event's size in bytes; a larger one is treated as a broken
	// connection. 0 means DefaultMaxEventSize.
	MaxEventSize int
	// OnState, when set, is called with (true, nil) each time a connection is established and
	// with (false, err) each time a connection ends or an attempt fails, including the final
	// error when the stream ends. It runs on the stream's goroutine: it must return quickly
	// and must not call Close.
	OnState func(connected bool, err error)
}

// EventStream is a resumable event stream of a device or an organization, read with
// [EventStream.Next]. A background goroutine holds the connection: it reconnects with
// exponential backoff and jitter after any error or server close, resumes from the last
// delivered revision with Last-Event-ID, and delivers every event once and in order (events
// with a revision at or below the last one delivered are dropped; an api.EventSync event is
// always delivered, as it replaces the receiver's state, and resets the revision to its own).
// An api.EventRelay event is not part of the log: it is delivered with Revision 0 and leaves
// Revision and the resume point alone.
// Credential errors (401, 403, 404) and other non-retryable 4xx answers end the stream: Next
// then returns that error, which matches the package's sentinels with errors.Is. So does an
// api.EventClosed event, which is not delivered: Next returns a [*ClosedError] with its reason
// ([ReasonOf] reads the reason of either).
//
// The goroutine ends when Close is called or the context given to Watch* is done; Close waits
// for it. An EventStream is safe for one reader calling Next and any goroutine calling Close
// or Revision.
type EventStream struct {
	c      *Client
	op     string
	url    string
	opts   WatchOptions
	cancel context.CancelFunc
	events chan api.Event
	done   chan struct{}
	err    error // the reason the stream ended; written before events is closed
	rev    atomic.Int64
	closed atomic.Bool
	once   sync.Once
	kick   chan struct{} // Reconnect requests
}

// WatchDevice opens the event stream of a device (authenticate with the device's token): peer
// changes of its organization, signaling messages addressed to it and relay credentials.
func (c *Client) WatchDevice(ctx context.Context, deviceID string, opts WatchOptions) *EventStream {
	return c.watch(ctx, "watch device "+deviceID, c.url("devices", deviceID, "events"), opts)
}

// WatchOrganization opens the event stream of an organization (authenticate as a member): its
// devices being added, updated and removed.
func (c *Client) WatchOrganization(ctx context.Context, orgID string, opts WatchOptions) *EventStream {
	return c.watch(ctx, "watch organization "+orgID, c.url("organizations", orgID, "events"), opts)
}

func (c *Client) watch(ctx context.Context, op, url string, opts WatchOptions) *EventStream {
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = opts.MinBackoff
	}
	if opts.MaxEventSize <= 0 {
		opts.MaxEventSize = DefaultMaxEventSize
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &EventStream{
		c:      c,
		op:     op,
		url:    url,
		opts:   opts,
		cancel: cancel,
		events: make(chan api.Event),
		done:   make(chan struct{}),
		kick:   make(chan struct{}, 1),
	}
	s.rev.Store(opts.AfterRevision)
	go s.run(ctx)
	return s
}

// Next returns the next event, waiting for it until ctx is done (which leaves the stream
// intact: call Next again later). After the stream has ended it returns the reason: the
// terminal API error, the Watch context's error, or ErrStreamClosed.
func (s *EventStream) Next(ctx context.Context) (api.Event, error) {
	select {
	case ev, ok := <-s.events:
		if !ok {
			return api.Event{}, s.err
		}
		if ev.Type != api.EventRelay {
			s.rev.Store(ev.Revision)
		}
		return ev, nil
	case <-ctx.Done():
		return api.Event{}, ctx.Err()
	}
}

// Revision returns the revision of the last logged event Next returned (or
// WatchOptions.AfterRevision before the first); relay events do not count. Pass it as AfterRevision to resume in a later stream.
func (s *EventStream) Revision() int64 { return s.rev.Load() }

// Done is closed when the stream has ended; Next then returns the reason.
func (s *EventStream) Done() <-chan struct{} { return s.done }

// Reconnect drops the current connection, if any, and connects again at once (resuming from
// the last delivered revision), or ends the wait before the next attempt. Call it when the
// connection is likely dead although nothing says so yet: after the host's public address or
// NAT mapping changed, the coordinator's packets go to a mapping that no longer exists, and
// only the idle timeout would notice. It does not wait for the new connection.
func (s *EventStream) Reconnect() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Close ends the stream and waits for its goroutine to exit. The first call returns nil; every
// later one waits for the same end and returns [ErrStreamClosed].
func (s *EventStream) Close() error {
	if s.closed.Swap(true) {
		<-s.done
		return ErrStreamClosed
	}
	s.cancel()
	<-s.done
	return nil
}

func (s *EventStream) state(connected bool, err error) {
	if s.opts.OnState != nil {
		s.opts.OnState(connected, err)
	}
}

func (s *EventStream) finish(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.events)
		close(s.done)
	})
}

// run is the stream's goroutine: connect, read, and reconnect until ctx ends or a terminal error.
func (s *EventStream) run(ctx context.Context) {
	last := s.opts.AfterRevision
	attempt := 0
	log := s.c.logger.With("stream", s.op)
	for {
		healthy, wait, err := s.connect(ctx, &last)
		ended := ctx.Err() != nil
		var terminal *terminalError
		switch {
		case ended && s.closed.Load():
			err = ErrStreamClosed
		case ended:
			err = fmt.Errorf("client: %s: %w", s.op, ctx.Err())
		case errors.As(err, &terminal):
			err = fmt.Errorf("client: %s: %w", s.op, terminal.err)
			log.Warn("client: event stream ended", "error", err)
		default:
			err = fmt.Errorf("client: %s: %w", s.op, err)
		}
		s.state(false, err)
		if ended || terminal != nil {
			s.finish(err)
			return
		}
		if healthy {
			attempt = 0
		}
		if errors.Is(err, errReconnect) {
			log.Debug("client: event stream reconnecting on request", "revision", last)
			attempt = 0
			continue
		}
		wait = max(wait, jitteredBackoff(s.opts.MinBackoff, s.opts.MaxBackoff, attempt))
		attempt++
		log.Debug("client: event stream disconnected", "error", err, "retry_in", wait, "revision", last)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-s.kick:
			t.Stop()
			attempt = 0
		case <-t.C:
		}
	}
}

// terminalError marks an error after which reconnecting is pointless.
type terminalError struct{ err error }

func (e *terminalError) Error() string { return e.err.Error() }

// connect makes one connection and reads events from it until it fails. healthy reports
// whether the connection carried at least one complete record; wait is a server-requested
// minimum delay (Retry-After) before the next attempt.
func (s *EventStream) connect(ctx context.Context, last *int64) (healthy bool, wait time.Duration, err error) {
	if err := ctx.Err(); err != nil {
		return false, 0, err // ended while waiting to reconnect
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var idleFired atomic.Bool
	idle := time.AfterFunc(s.opts.IdleTimeout, func() {
		idleFired.Store(true)
		cancel()
	})
	defer idle.Stop()
	var kicked atomic.Bool
	stopKick := make(chan struct{})
	defer close(stopKick)
	go func() {
		select {
		case <-s.kick:
			kicked.Store(true)
			cancel()
		case <-stopKick:
		}
	}()
	idleErr := func(err error) error {
		if kicked.Load() {
			return errReconnect
		}
		if idleFired.Load() {
			return errIdle
		}
		return err
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return false, 0, &terminalError{err}
	}
	s.c.setHeaders(req.Header)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if *last > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(*last, 10))
	}
	resp, err := s.c.streamHC.Do(req)
	if err != nil {
		return false, 0, idleErr(err)
	}
	defer drain(resp.Body)
	if resp.StatusCode != http.StatusOK {
		apiErr := readAPIError(resp)
		switch code := resp.StatusCode; {
		case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
			if ra, ok := retryAfter(resp); ok {
				wait = min(ra, maxRetryAfter)
			}
			return false, wait, apiErr
		case code >= 400 && code < 500 && code != http.StatusRequestTimeout:
			return false, 0, &terminalError{apiErr}
		}
		return false, 0, apiErr
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return false, 0, fmt.Errorf("unexpected content type %q", resp.Header.Get("Content-Type"))
	}
	idle.Reset(s.opts.IdleTimeout)
	s.state(true, nil)

	p := newSSEReader(&idleReader{r: resp.Body, timer: idle, d: s.opts.IdleTimeout}, s.opts.MaxEventSize)
	defer func() { healthy = p.records > 0 }()
	for {
		msg, err := p.next()
		if err != nil {
			if err == io.EOF {
				err = errors.New("the coordinator closed the stream")
			}
			return false, 0, idleErr(err)
		}
		var ev api.Event
		if err := json.Unmarshal(msg.Data, &ev); err != nil {
			return false, 0, fmt.Errorf("event %q: bad data: %w", msg.ID, err)
		}
		if ev.Type == "" {
			ev.Type = msg.Event
		}
		if ev.Type == api.EventClosed {
			return true, 0, &terminalError{&ClosedError{Reason: ev.Reason}}
		}
		// Relay events are not in the log: no revision of their own (msg.ID is the previous
		// event's), never a duplicate, and no move of the resume point.
		unlogged := ev.Type == api.EventRelay
		switch {
		case unlogged:
			ev.Revision = 0
		case ev.Revision == 0:
			ev.Revision, _ = strconv.ParseInt(msg.ID, 10, 64)
		}
		if !unlogged && ev.Type != api.EventSync && ev.Revision <= *last {
			continue // already delivered
		}
		// The consumer may take its time; that is not the connection's silence.
		idle.Stop()
		select {
		case s.events <- ev:
			if !unlogged {
				*last = ev.Revision
			}
		case <-ctx.Done():
			return false, 0, idleErr(ctx.Err())
		}
		idle.Reset(s.opts.IdleTimeout)
	}
}

// idleReader re-arms the idle timer whenever bytes arrive.
type idleReader struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
}

func (r *idleReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if n > 0 {
		r.timer.Reset(r.d)
	}
	return n, err
}
