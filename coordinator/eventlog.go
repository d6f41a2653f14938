package coordinator

// The event log: appending an organization's events inside a domain transaction, and reading
// a stream's next events back (a sync, from the peer-list cache, when it has no starting point
// in the log or its device moved).

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// streamBatch is how many events one read of the log returns.
const streamBatch = 256

// signalRetention is how long signals (ICE messages) are kept for a stream that reconnects:
// a session's offer older than this has been retransmitted or replaced, so a signal is worth
// nothing after it. Signals live apart from the durable log for that reason.
const signalRetention = 2 * time.Minute

// appendEvent stores an event of the organization's log inside tx. target limits it to one
// device's stream. Signals go to the store's transient signal table, numbered in the same
// sequence, so streams read them in order with the rest.
func (s *Server) appendEvent(ctx context.Context, tx store.Tx, orgID, target string, ev api.Event) error {
	ev.Revision = 0
	ev.OrganizationID = orgID
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	rec := store.Event{OrganizationID: orgID, TargetDeviceID: target, Type: ev.Type, Data: data, CreatedAt: s.now()}
	if ev.Type == api.EventSignal {
		_, err = tx.AppendSignal(ctx, rec)
	} else {
		_, err = tx.AppendEvent(ctx, rec)
	}
	return err
}

// deviceEvent appends a device.* event about d to its organization's log.
func (s *Server) deviceEvent(ctx context.Context, tx store.Tx, typ string, d store.Device) error {
	ad := s.apiDevice(d)
	return s.appendEvent(ctx, tx, d.OrganizationID, "", api.Event{Type: typ, Device: &ad})
}

// moveMarker is what a move appends to the new organization's log for the moved device: a
// sync event without devices. The device's stream, reading it, sends the organization's
// current list from the peer-list cache (readLog) — also a stream resuming from before the
// move — so the log never holds a copy of a whole device list.
func moveMarker() api.Event { return api.Event{Type: api.EventSync} }

// subject is what a stream finds when it re-checks what it follows.
type subject int

const (
	subjectHere    subject = iota // still there: read on
	subjectGone                   // deleted: send what is left in the log for it, then end
	subjectRevoked                // access ended: end at once
)

// checkSubject re-checks a stream's subject: that its device still exists with the token the
// stream was opened with (following it when it moved), or that its user is still a member
// with a valid credential. When the subject is gone or revoked it sets st.reason.
func checkSubject(ctx context.Context, tx store.Tx, st *stream, now time.Time) (subject, error) {
	if st.deviceID == "" {
		return checkMember(ctx, tx, st, now)
	}
	d, err := tx.GetDevice(ctx, st.deviceID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Its own device.removed is still in the log, if it was removed on its own.
		st.reason, err = goneReason(ctx, tx, st.orgID, st.ownerID, api.ReasonDeviceRemoved)
		return subjectGone, err
	case err != nil:
		return subjectHere, err
	case d.TokenID != st.tokenID:
		// The token the stream was opened with was replaced (rotated, or superseded by a
		// pending token): the credential is revoked, so the stream ends at once.
		st.reason = api.ReasonCredentialRevoked
		return subjectRevoked, nil
	case d.OrganizationID != st.orgID:
		// Moved: follow it. Revisions are global, so the cursor stays valid; the move left a
		// marker addressed to this device in the new organization's log (moveMarker).
		st.orgID = d.OrganizationID
	}
	return subjectHere, nil
}

// checkMember re-checks an organization stream: its user API token (revoked, expired), its
// credential's expiry and the user's membership.
func checkMember(ctx context.Context, tx store.Tx, st *stream, now time.Time) (subject, error) {
	if st.userTokenID != "" {
		t, err := tx.GetToken(ctx, st.userTokenID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			st.reason = api.ReasonCredentialRevoked
			return subjectRevoked, nil
		case err != nil:
			return subjectHere, err
		case expired(t.ExpiresAt, now):
			st.reason = api.ReasonCredentialExpired
			return subjectRevoked, nil
		}
	}
	if !st.expiresAt.IsZero() && !now.Before(st.expiresAt) {
		st.reason = api.ReasonCredentialExpired
		return subjectRevoked, nil
	}
	_, err := tx.GetMember(ctx, st.orgID, st.userID)
	if !errors.Is(err, store.ErrNotFound) {
		return subjectHere, err
	}
	st.reason, err = goneReason(ctx, tx, st.orgID, st.userID, api.ReasonMembershipEnded)
	return subjectRevoked, err
}

// goneReason tells why a stream's device or membership is gone: with its user, with its
// organization, or on its own (def). The user comes first: deleting a user deletes their
// personal organization too (with the device.removed events in its log), and the user is why.
func goneReason(ctx context.Context, tx store.Tx, orgID, userID string, def api.Reason) (api.Reason, error) {
	if _, err := tx.GetUser(ctx, userID); errors.Is(err, store.ErrNotFound) {
		return api.ReasonUserDeleted, nil
	} else if err != nil {
		return "", err
	}
	if _, err := tx.GetOrganization(ctx, orgID); errors.Is(err, store.ErrNotFound) {
		return api.ReasonOrganizationDeleted, nil
	} else if err != nil {
		return "", err
	}
	return def, nil
}

// logRead is what one read of the log has for a stream: a sync to send first (nil when none),
// then evs.
type logRead struct {
	sync *peerSync
	evs  []api.Event
}

// readLog reads the stream's next events from the log. gone means the stream's subject no
// longer exists; done means the stream should end after sending what was read (gone, and
// nothing left to read).
func (s *Server) readLog(ctx context.Context, tx store.Tx, st *stream) (out logRead, done, gone bool, err error) {
	sub, err := checkSubject(ctx, tx, st, s.now())
	switch {
	case err != nil:
		return out, false, false, err
	case sub == subjectRevoked:
		return out, true, true, nil
	case sub == subjectGone:
		done, gone = true, true
	}
	if !st.synced {
		latest, err := tx.LatestRevision(ctx)
		if err != nil {
			return out, false, false, err
		}
		pruned, err := tx.PrunedRevision(ctx)
		if err != nil {
			return out, false, false, err
		}
		st.synced = true
		if st.cursor < pruned || st.cursor > latest || st.cursor < 0 {
			st.cursor = -1 // resume impossible: start over
		}
		if st.cursor < 0 {
			if done {
				return out, done, gone, nil
			}
			out.sync, err = s.syncAt(ctx, tx, st, latest)
			return out, done, gone, err
		}
	}
	recs, err := tx.ListEvents(ctx, st.orgID, st.deviceID, st.cursor, streamBatch)
	if err != nil {
		return out, false, false, err
	}
	if len(recs) == streamBatch {
		done = false // more to read first
	}
	for _, rec := range recs {
		if rec.Type == api.EventSync && !gone {
			// A move's marker (or a whole list an older coordinator logged): the stream's view
			// starts over from the list as of the snapshot's latest revision, which covers
			// every later event read here.
			latest, err := tx.LatestRevision(ctx)
			if err != nil {
				return out, false, false, err
			}
			out.evs = nil
			out.sync, err = s.syncAt(ctx, tx, st, latest)
			return out, false, gone, err
		}
		var ev api.Event
		if err := json.Unmarshal(rec.Data, &ev); err != nil {
			s.log.Warn("skipping undecodable event", "revision", rec.Revision, "err", err)
			continue
		}
		ev.Revision, ev.Type, ev.OrganizationID, ev.Time = rec.Revision, rec.Type, rec.OrganizationID, rec.CreatedAt
		out.evs = append(out.evs, ev)
	}
	return out, done, gone, nil
}

// syncAt makes the stream's sync as of the log's revision latest (read in tx) and moves its
// cursor there.
func (s *Server) syncAt(ctx context.Context, tx store.Tx, st *stream, latest int64) (*peerSync, error) {
	list, err := s.peerListAt(ctx, tx, st.orgID)
	if err != nil {
		return nil, err
	}
	st.cursor = latest
	return &peerSync{orgID: st.orgID, rev: latest, list: list, time: s.now()}, nil
}
