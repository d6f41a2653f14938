package coordinator

// Serving an event stream as Server-Sent Events: the wait loop (store notifications, relay
// renewals, heartbeats), presence (online, LastSeenAt of ephemeral devices) and the wire form.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
)

// streamHandler serves the event stream that open opens for the path ID (named what in
// errors), resuming after the request's Last-Event-ID.
func (s *Server) streamHandler(what string, open func(context.Context, Principal, string) (*stream, error)) handler {
	return func(w http.ResponseWriter, r *http.Request, p Principal) error {
		id, err := pathID(r, "id", what)
		if err != nil {
			return err
		}
		rev, resume, err := parseLastEventID(r.Header.Get("Last-Event-ID"))
		if err != nil {
			return err
		}
		st, err := open(r.Context(), p, id)
		if err != nil {
			return err
		}
		st.cursor = -1
		if resume {
			st.cursor = rev
		}
		return s.serveStream(w, r, st)
	}
}

// sseWriter writes Server-Sent Events, each write bounded by a deadline and flushed.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (sw sseWriter) write(b []byte) error {
	_ = sw.rc.SetWriteDeadline(time.Now().Add(sw.timeout))
	if _, err := sw.w.Write(b); err != nil {
		return err
	}
	return sw.rc.Flush()
}

// event writes ev, with its revision as the SSE id when logged (relay events are not: the
// client's Last-Event-ID stays the last logged revision).
func (sw sseWriter) event(ev api.Event, logged bool) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	var id string
	if logged {
		id = fmt.Sprintf("id: %d\n", ev.Revision)
	}
	return sw.write(fmt.Appendf(nil, "%sevent: %s\ndata: %s\n\n", id, ev.Type, data))
}

// sync writes a sync event, its devices copied from the peer-list cache (peerlist.go).
func (sw sseWriter) sync(ps *peerSync, h *hub) error {
	b := fmt.Appendf(make([]byte, 0, ps.list.size+len(ps.list.ids)*8+256), "id: %d\nevent: %s\ndata: ", ps.rev, api.EventSync)
	b, err := ps.appendJSON(b, h)
	if err != nil {
		return err
	}
	return sw.write(append(b, "\n\n"...))
}

// present marks a device's stream online while it is connected, in this process and in the
// store's presence rows (renewed at every heartbeat, touch); an ephemeral device's stream also
// records LastSeenAt at the start, now and then and at the end. The returned function ends the
// presence.
func (s *Server) present(ctx context.Context, st *stream) (touch func(), end func()) {
	if st.deviceID == "" {
		return func() {}, func() {}
	}
	s.hub.connect(st.deviceID)
	s.putPresence(ctx, st)
	if st.ephemeral {
		s.touchDevice(ctx, st.deviceID)
	}
	touched := s.now()
	touch = func() {
		s.putPresence(ctx, st)
		if st.ephemeral && s.now().Sub(touched) >= s.cfg.EphemeralGrace/3 {
			s.touchDevice(ctx, st.deviceID)
			touched = s.now()
		}
	}
	return touch, func() {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if st.ephemeral {
			s.touchDevice(tctx, st.deviceID)
		}
		s.hub.disconnect(st.deviceID)
		s.dropPresence(tctx, st.deviceID)
	}
}

// serveStream writes Server-Sent Events for st until the client goes away, the subject is
// gone or the server closes.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, st *stream) error {
	if err := s.openStream(); err != nil {
		return err
	}
	defer s.streams.Done()
	s.metrics.streams.Inc()
	defer s.metrics.streams.Dec()

	ctx := r.Context()
	touch, end := s.present(ctx, st)
	defer end()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	sw := sseWriter{w: w, rc: http.NewResponseController(w), timeout: s.cfg.StreamWriteTimeout}
	if err := sw.write([]byte(": connected\n\n")); err != nil {
		return nil
	}
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	renew := time.NewTimer(time.Hour) // fires when the device's relay credentials need renewing
	renew.Stop()
	defer renew.Stop()
	// The credential's expiry and (for user API tokens) its revocation end the stream on
	// time, not at the next event.
	var expiryC, recheckC <-chan time.Time
	if !st.expiresAt.IsZero() {
		expiry := time.NewTimer(max(st.expiresAt.Sub(s.now()), 0))
		defer expiry.Stop()
		expiryC = expiry.C
	}
	if st.userTokenID != "" {
		recheck := time.NewTicker(credentialRecheck)
		defer recheck.Stop()
		recheckC = recheck.C
	}
	for {
		org := st.orgID
		wake := s.hub.wait(org)
		read, relay, done, err := s.poll(ctx, st)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("event stream read failed", "org_id", st.orgID, "device_id", st.deviceID, "err", err)
			}
			return nil
		}
		if read.sync != nil {
			if err := sw.sync(read.sync, s.hub); err != nil {
				return nil
			}
			s.metrics.eventSent(time.Time{})
		}
		evs := read.evs
		for _, ev := range evs {
			if err := sw.event(ev, true); err != nil {
				return nil
			}
			s.metrics.eventSent(ev.Time)
			st.cursor = max(st.cursor, ev.Revision)
		}
		if relay != nil {
			if err := sw.event(*relay, false); err != nil {
				return nil
			}
		}
		if done {
			if st.reason != "" {
				_ = sw.event(api.Event{Type: api.EventClosed, OrganizationID: st.orgID, Reason: st.reason, Time: s.now()}, false)
			}
			return nil
		}
		if len(evs) >= streamBatch || st.orgID != org {
			// More to read, or the device moved: wake-ups now come from its new organization,
			// which may have changed since the wait was taken.
			continue
		}
		var renewC <-chan time.Time
		if !st.relayDue.IsZero() {
			renew.Reset(max(st.relayDue.Sub(s.now()), 10*time.Millisecond))
			renewC = renew.C
		}
		select {
		case <-wake:
		case <-renewC:
		case <-expiryC:
		case <-recheckC:
		case <-heartbeat.C:
			// Besides detecting dead connections, the heartbeat re-checks access, so a stream
			// whose member was removed on another replica ends within one interval.
			if err := sw.write([]byte(": ping\n\n")); err != nil {
				return nil
			}
			touch()
		case <-ctx.Done():
			return nil
		case <-s.closing:
			return nil
		}
	}
}
