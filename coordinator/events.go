package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// streamBatch is how many events one read of the log returns.
const streamBatch = 256

// hub wakes event streams when the store reports new events, and keeps the in-memory state of
// devices: which are online (stream connected) and when ephemeral devices went away.
type hub struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every store notification
	online  map[string]int
	// ephemeral maps each known ephemeral device to the time its last stream ended (or it was
	// registered / the coordinator started); the zero time while a stream is connected.
	ephemeral map[string]time.Time
}

func newHub() *hub {
	return &hub{changed: make(chan struct{}), online: map[string]int{}, ephemeral: map[string]time.Time{}}
}

// wait returns a channel closed at the next store notification. Take it before reading the
// log so that no notification is missed.
func (h *hub) wait() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}

func (h *hub) broadcast() {
	h.mu.Lock()
	close(h.changed)
	h.changed = make(chan struct{})
	h.mu.Unlock()
}

func (h *hub) run(ctx context.Context, sub <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-sub:
			if !ok {
				return
			}
			h.broadcast()
		}
	}
}

func (h *hub) isOnline(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.online[id] > 0
}

func (h *hub) connect(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.online[id]++
	if _, ok := h.ephemeral[id]; ok {
		h.ephemeral[id] = time.Time{}
	}
}

func (h *hub) disconnect(id string, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.online[id]--
	if h.online[id] <= 0 {
		delete(h.online, id)
		if _, ok := h.ephemeral[id]; ok {
			h.ephemeral[id] = now
		}
	}
}

func (h *hub) trackEphemeral(id string, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.ephemeral[id]; ok {
		return
	}
	if h.online[id] > 0 {
		now = time.Time{}
	}
	h.ephemeral[id] = now
}

// sawEphemeral restarts a disconnected ephemeral device's grace period from when it was seen.
func (h *hub) sawEphemeral(id string, seen time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if since, ok := h.ephemeral[id]; ok && !since.IsZero() && seen.After(since) {
		h.ephemeral[id] = seen
	}
}

func (h *hub) forgetEphemeral(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.ephemeral, id)
}

// expiredEphemeral lists ephemeral devices without a stream since before deadline.
func (h *hub) expiredEphemeral(deadline time.Time) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for id, since := range h.ephemeral {
		if !since.IsZero() && h.online[id] == 0 && since.Before(deadline) {
			out = append(out, id)
		}
	}
	return out
}

// loadEphemeral starts the grace period of every stored ephemeral device at start-up.
func (s *Server) loadEphemeral(ctx context.Context) error {
	var ids []string
	err := s.store.Tx(ctx, func(tx store.Tx) error {
		ids = nil
		orgs, err := tx.ListOrganizations(ctx)
		if err != nil {
			return err
		}
		for _, o := range orgs {
			ds, err := tx.ListDevices(ctx, o.ID)
			if err != nil {
				return err
			}
			for _, d := range ds {
				if d.Ephemeral {
					ids = append(ids, d.ID)
				}
			}
		}
		return nil
	})
	now := s.now()
	for _, id := range ids {
		s.hub.trackEphemeral(id, now)
	}
	return err
}

// sweeper prunes old events and deletes ephemeral devices gone longer than the grace period.
func (s *Server) sweeper(ctx context.Context) {
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.sweep(ctx)
	}
}

func (s *Server) sweep(ctx context.Context) {
	now := s.now()
	var pruned int64
	err := s.store.Tx(ctx, func(tx store.Tx) error {
		var err error
		pruned, err = tx.PruneEvents(ctx, now.Add(-s.cfg.EventRetention))
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("pruning events failed", "err", err)
		}
	} else if pruned > 0 {
		s.log.Debug("pruned events", "count", pruned)
	}
	deadline := now.Add(-s.cfg.EphemeralGrace)
	for _, id := range s.hub.expiredEphemeral(deadline) {
		var seen time.Time
		err := s.store.Tx(ctx, func(tx store.Tx) error {
			d, err := tx.GetDevice(ctx, id)
			if err != nil {
				return err
			}
			if d.LastSeenAt.After(deadline) {
				// Seen recently, e.g. by another replica sharing the store: not yet.
				seen = d.LastSeenAt
				return errNotYet
			}
			return s.deleteDeviceTx(ctx, tx, d)
		})
		switch {
		case errors.Is(err, errNotYet):
			s.hub.sawEphemeral(id, seen)
		case err == nil:
			s.log.Info("ephemeral device deleted after disconnecting", "device_id", id)
			s.hub.forgetEphemeral(id)
		case errors.Is(err, store.ErrNotFound):
			s.hub.forgetEphemeral(id)
		case ctx.Err() == nil:
			s.log.Warn("deleting ephemeral device failed", "device_id", id, "err", err)
		}
	}
}

var errNotYet = errors.New("not yet")

// touchDevice records that a device was seen now (its LastSeenAt), so that every replica
// sharing the store knows an ephemeral device is still connected somewhere.
func (s *Server) touchDevice(ctx context.Context, id string) {
	now := s.now()
	err := s.store.Tx(ctx, func(tx store.Tx) error {
		d, err := tx.GetDevice(ctx, id)
		if err != nil {
			return err
		}
		d.LastSeenAt = now
		return tx.UpdateDevice(ctx, d)
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Debug("recording device last seen failed", "device_id", id, "err", err)
	}
}

// stream is the state of one event stream.
type stream struct {
	orgID    string // the organization whose log the stream follows
	deviceID string // set for a device's own stream
	tokenID  string // the device token the stream was opened with
	userID   string // set for an organization stream
	cursor   int64  // highest revision sent (or covered by a sync)
	// ephemeral devices record LastSeenAt while their stream is connected.
	ephemeral bool
	synced    bool // false until the stream has a starting point

	// Relay events of a device's stream (see relay.go).
	relayKey  string    // relaySource.key of the last relay event; "" before the first
	relayDue  time.Time // when to send fresh credentials; zero when the last event had none
	relayHeld bool      // the last relay event told the device about servers
}

// minRelayRenew bounds how often a stream renews credentials, whatever the TTL.
const minRelayRenew = time.Second

// poll reads what the stream has to send next, in one transaction: evs from the log and, on a
// device's stream, relay when the device needs a relay event. done means the stream's subject
// is gone and it should end after sending evs.
func (s *Server) poll(ctx context.Context, st *stream) (evs []api.Event, relay *api.Event, done bool, err error) {
	err = s.store.Tx(ctx, func(tx store.Tx) error {
		relay = nil
		var gone bool
		var err error
		if evs, done, gone, err = s.pollLog(ctx, tx, st); err != nil || st.deviceID == "" || gone {
			return err
		}
		relay, err = s.pollRelay(ctx, tx, st)
		return err
	})
	return evs, relay, done, err
}

// pollRelay returns the relay event a device's stream should send now, if any: the first one
// (when there is anything to tell), one whenever the relays of the device's organization
// change, and one when the last credentials have reached half their lifetime.
func (s *Server) pollRelay(ctx context.Context, tx store.Tx, st *stream) (*api.Event, error) {
	src, err := s.relaySourceFor(ctx, tx, st.orgID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if src.key == st.relayKey && (st.relayDue.IsZero() || now.Before(st.relayDue)) {
		return nil, nil
	}
	st.relayKey, st.relayDue = src.key, time.Time{}
	if src.empty() && !st.relayHeld {
		// Nothing to tell and nothing to take back: streams of a coordinator without relays
		// carry no relay events at all.
		return nil, nil
	}
	rc, err := s.relayConfig(st.deviceID, src)
	if err != nil {
		// Not the stream's fault: log it and keep the stream. The key is recorded, so this is
		// tried again when the relays change.
		s.log.Error("cannot make relay credentials", "org_id", st.orgID, "device_id", st.deviceID, "err", err)
		return nil, nil
	}
	st.relayHeld = !src.empty()
	if !rc.ExpiresAt.IsZero() {
		st.relayDue = now.Add(max(rc.ExpiresAt.Sub(now)/2, minRelayRenew))
	}
	return &api.Event{Type: api.EventRelay, OrganizationID: st.orgID, Relay: &rc, Time: now}, nil
}

// pollLog reads the stream's next events from the log. gone means the stream's subject no
// longer exists; done means the stream should end after sending evs (gone, and nothing left to
// read).
func (s *Server) pollLog(ctx context.Context, tx store.Tx, st *stream) (evs []api.Event, done, gone bool, err error) {
	if st.deviceID != "" {
		d, err := tx.GetDevice(ctx, st.deviceID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			gone, done = true, true // send what is left in the log (its own device.removed), then end
		case err != nil:
			return nil, false, false, err
		case d.TokenID != st.tokenID:
			// The token the stream was opened with was replaced (rotated, or superseded by
			// a pending token): the credential is revoked, so the stream ends at once.
			return nil, true, true, nil
		case d.OrganizationID != st.orgID:
			// Moved: follow it. Revisions are global, so the cursor stays valid; the move
			// left a sync addressed to this device in the new organization's log.
			st.orgID = d.OrganizationID
		}
	} else if _, err := tx.GetMember(ctx, st.orgID, st.userID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, true, true, nil
		}
		return nil, false, false, err
	}
	if !st.synced {
		latest, err := tx.LatestRevision(ctx)
		if err != nil {
			return nil, false, false, err
		}
		pruned, err := tx.PrunedRevision(ctx)
		if err != nil {
			return nil, false, false, err
		}
		st.synced = true
		if st.cursor < pruned || st.cursor > latest || st.cursor < 0 {
			st.cursor = -1 // resume impossible: start over
		}
		if st.cursor < 0 {
			if done {
				return nil, done, gone, nil
			}
			ds, err := tx.ListDevices(ctx, st.orgID)
			if err != nil {
				return nil, false, false, err
			}
			st.cursor = latest
			evs = []api.Event{{
				Revision: latest, Type: api.EventSync, OrganizationID: st.orgID,
				Devices: s.apiDevices(ds), Time: s.now(),
			}}
			return evs, done, gone, nil
		}
	}
	recs, err := tx.ListEvents(ctx, st.orgID, st.deviceID, st.cursor, streamBatch)
	if err != nil {
		return nil, false, false, err
	}
	if len(recs) == streamBatch {
		done = false // more to read first
	}
	for _, rec := range recs {
		var ev api.Event
		if err := json.Unmarshal(rec.Data, &ev); err != nil {
			s.log.Warn("skipping undecodable event", "revision", rec.Revision, "err", err)
			continue
		}
		ev.Revision, ev.Type, ev.OrganizationID, ev.Time = rec.Revision, rec.Type, rec.OrganizationID, rec.CreatedAt
		if ev.Type == api.EventSync {
			evs = evs[:0] // a sync replaces everything before it
		}
		evs = append(evs, ev)
	}
	return evs, done, gone, nil
}

// serveStream writes Server-Sent Events for st until the client goes away, the subject is
// gone or the server closes.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, st *stream) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errorf(ErrUnavailable, "coordinator is shutting down")
	}
	s.streams.Add(1)
	s.mu.Unlock()
	defer s.streams.Done()

	ctx := r.Context()
	var touched time.Time
	if st.deviceID != "" {
		s.hub.connect(st.deviceID)
		defer func() { s.hub.disconnect(st.deviceID, s.now()) }()
		if st.ephemeral {
			s.touchDevice(ctx, st.deviceID)
			touched = s.now()
			defer func() {
				tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				s.touchDevice(tctx, st.deviceID)
			}()
		}
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(b []byte) error {
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.StreamWriteTimeout))
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := write([]byte(": connected\n\n")); err != nil {
		return nil
	}
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	renew := time.NewTimer(time.Hour) // fires when the device's relay credentials need renewing
	renew.Stop()
	defer renew.Stop()
	for {
		wake := s.hub.wait()
		evs, relay, done, err := s.poll(ctx, st)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("event stream read failed", "org_id", st.orgID, "device_id", st.deviceID, "err", err)
			}
			return nil
		}
		for _, ev := range evs {
			data, err := json.Marshal(ev)
			if err != nil {
				return nil
			}
			if err := write(fmt.Appendf(nil, "id: %d\nevent: %s\ndata: %s\n\n", ev.Revision, ev.Type, data)); err != nil {
				return nil
			}
			if ev.Revision > st.cursor {
				st.cursor = ev.Revision
			}
		}
		if relay != nil {
			// No id field: the client's Last-Event-ID stays the last logged revision.
			data, err := json.Marshal(relay)
			if err != nil {
				return nil
			}
			if err := write(fmt.Appendf(nil, "event: %s\ndata: %s\n\n", relay.Type, data)); err != nil {
				return nil
			}
		}
		if done {
			return nil
		}
		if len(evs) >= streamBatch {
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
		case <-heartbeat.C:
			// Besides detecting dead connections, the heartbeat re-checks access, so a stream
			// whose member was removed on another replica ends within one interval.
			if err := write([]byte(": ping\n\n")); err != nil {
				return nil
			}
			if st.ephemeral && s.now().Sub(touched) >= s.cfg.EphemeralGrace/3 {
				s.touchDevice(ctx, st.deviceID)
				touched = s.now()
			}
		case <-ctx.Done():
			return nil
		case <-s.closing:
			return nil
		}
	}
}

func (s *Server) newStream(r *http.Request) (*stream, error) {
	rev, resume, err := parseLastEventID(r.Header.Get("Last-Event-ID"))
	if err != nil {
		return nil, err
	}
	st := &stream{cursor: -1}
	if resume {
		st.cursor = rev
	}
	return st, nil
}

// handleDeviceEvents serves a device's own event stream (device token only).
func (s *Server) handleDeviceEvents(w http.ResponseWriter, r *http.Request, p Principal) error {
	if p.Kind != KindDevice {
		return errorf(ErrForbidden, "a device's event stream needs its device token")
	}
	id, err := pathID(r, "id", "device id")
	if err != nil {
		return err
	}
	st, err := s.newStream(r)
	if err != nil {
		return err
	}
	err = s.store.Tx(r.Context(), func(tx store.Tx) error {
		d, acc, err := loadDevice(r.Context(), tx, p, id)
		if err != nil {
			return err
		}
		if !acc.self {
			return errorf(ErrForbidden, "a device may read only its own event stream")
		}
		st.orgID, st.deviceID, st.tokenID, st.ephemeral = d.OrganizationID, d.ID, p.TokenID, d.Ephemeral
		return nil
	})
	if err != nil {
		return err
	}
	return s.serveStream(w, r, st)
}

// handleOrgEvents serves an organization's event stream to its members.
func (s *Server) handleOrgEvents(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := p.requireUser(); err != nil {
		return err
	}
	id, err := pathID(r, "id", "organization id")
	if err != nil {
		return err
	}
	st, err := s.newStream(r)
	if err != nil {
		return err
	}
	err = s.store.Tx(r.Context(), func(tx store.Tx) error {
		_, _, err := memberOf(r.Context(), tx, id, p.UserID)
		return err
	})
	if err != nil {
		return err
	}
	st.orgID, st.userID = id, p.UserID
	return s.serveStream(w, r, st)
}
