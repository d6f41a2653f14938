package coordinator

// Event streams as the domain sees them: who may open one, and what a stream sends next —
// events from the log and, on a device's stream, relay events with fresh credentials.

import (
	"context"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// stream is the state of one event stream.
type stream struct {
	orgID    string // the organization whose log the stream follows
	deviceID string // set for a device's own stream
	ownerID  string // the device's owner, to tell why a deleted device went
	tokenID  string // the device token the stream was opened with
	userID   string // set for an organization stream
	// userTokenID and expiresAt are the user API token an organization stream was opened
	// with (if any) and when its credential expires (zero: never): the stream ends when the
	// token is revoked or expires.
	userTokenID string
	expiresAt   time.Time
	cursor      int64 // highest revision sent (or covered by a sync); -1 for none
	// reason is why the stream ends, once its subject is gone or its access revoked; it is
	// sent to the client as an api.EventClosed.
	reason api.Reason
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

// credentialRecheck is how often a stream opened with a user API token re-checks that the token
// still exists: revoking a token appends no event that would wake the stream.
const credentialRecheck = time.Second

// openDeviceStream opens a device's own event stream, for the device's own token only.
func (s *Server) openDeviceStream(ctx context.Context, p Principal, id string) (*stream, error) {
	return inTx(ctx, s.store, func(tx store.Tx) (*stream, error) {
		d, acc, err := loadDevice(ctx, tx, p, id)
		if err != nil {
			return nil, err
		}
		if !acc.self {
			return nil, errorf(ErrForbidden, "a device may read only its own event stream")
		}
		return &stream{orgID: d.OrganizationID, deviceID: d.ID, ownerID: d.OwnerID, tokenID: p.TokenID, ephemeral: d.Ephemeral}, nil
	})
}

// openOrgStream opens an organization's event stream for one of its members.
func (s *Server) openOrgStream(ctx context.Context, p Principal, id string) (*stream, error) {
	return inTx(ctx, s.store, func(tx store.Tx) (*stream, error) {
		if _, _, err := memberOf(ctx, tx, id, p.UserID); err != nil {
			return nil, err
		}
		st := &stream{orgID: id, userID: p.UserID, expiresAt: p.ExpiresAt}
		if p.Kind == KindUser {
			st.userTokenID = p.TokenID
		}
		return st, nil
	})
}

// poll reads what the stream has to send next, in one read-only transaction: what the log has
// for it and, on a device's stream, relay when the device needs a relay event. done means the
// stream's subject is gone and it should end after sending what was read.
func (s *Server) poll(ctx context.Context, st *stream) (out logRead, relay *api.Event, done bool, err error) {
	err = s.store.View(ctx, func(tx store.Tx) error {
		relay = nil
		var gone bool
		var err error
		if out, done, gone, err = s.readLog(ctx, tx, st); err != nil || st.deviceID == "" || gone {
			return err
		}
		relay, err = s.pollRelay(ctx, tx, st)
		return err
	})
	return out, relay, done, err
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
