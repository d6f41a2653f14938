package engine

import (
	"errors"
	"fmt"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
)

// Sentinels for a node the coordinator no longer accepts, re-exported by the facade. Both wrap
// ErrCutOff, so errors.Is(err, ErrCutOff) tells "cut off, for whatever reason".
var (
	// ErrCutOff: the coordinator no longer accepts this node; it has stopped.
	ErrCutOff = errors.New("nexodus: cut off by the coordinator")
	// ErrDeviceRemoved: the node's device was deleted (by a user, with its organization, or
	// with its user).
	ErrDeviceRemoved = fmt.Errorf("%w: the device was removed", ErrCutOff)
	// ErrCredentialRevoked: the coordinator refuses the node's device token (revoked, expired,
	// or replaced by a re-registration elsewhere).
	ErrCredentialRevoked = fmt.Errorf("%w: the device token was refused", ErrCutOff)
	// ErrOrganizationDeleted: the node's organization was deleted, and its device with it. It
	// wraps ErrDeviceRemoved.
	ErrOrganizationDeleted = fmt.Errorf("%w with its organization", ErrDeviceRemoved)
	// ErrUserDeleted: the user who registered the node was deleted, and their devices with
	// them. It wraps ErrDeviceRemoved.
	ErrUserDeleted = fmt.Errorf("%w with its user", ErrDeviceRemoved)
)

// reasonErrors maps the coordinator's reasons to the engine's sentinels.
var reasonErrors = map[api.Reason]error{
	api.ReasonDeviceRemoved:       ErrDeviceRemoved,
	api.ReasonOrganizationDeleted: ErrOrganizationDeleted,
	api.ReasonUserDeleted:         ErrUserDeleted,
	api.ReasonCredentialRevoked:   ErrCredentialRevoked,
	api.ReasonCredentialExpired:   ErrCredentialRevoked,
}

// cutOffReason says why a control stream that ended for good (an api.EventClosed, or a 4xx on
// reconnect) cut the node off: the coordinator's reason when it gave one, else the status.
func cutOffReason(err error) error {
	if r, ok := reasonErrors[client.ReasonOf(err)]; ok {
		return r
	}
	switch {
	case errors.Is(err, client.ErrNotFound):
		return ErrDeviceRemoved
	case errors.Is(err, client.ErrUnauthorized), errors.Is(err, client.ErrForbidden):
		return ErrCredentialRevoked
	default:
		return fmt.Errorf("%w: %v", ErrCutOff, err)
	}
}

// cutOff stops the node for good: it drops every peer (so no packet goes to or comes from the
// old organization), ends the background work and tells the facade. Later calls do nothing.
// The data plane stays open until Close, so the node's sockets and listeners close in order.
func (e *Engine) cutOff(reason error) {
	e.mu.Lock()
	if e.stopErr != nil {
		e.mu.Unlock()
		return
	}
	e.stopErr = reason
	old := e.peers
	e.peers = PeerMap{Self: old.Self, Removed: true, Peers: map[string]api.Device{}}
	e.connected = false
	dp := e.dp
	e.mu.Unlock()

	e.log.Error("cut off by the coordinator; the node has stopped", "reason", reason)
	dp.setPeers(e.ctx, nil)
	if fn := e.cfg.OnPeers; fn != nil {
		if changes := diff(old.Peers, nil); len(changes) > 0 {
			fn(changes)
		}
	}
	if fn := e.cfg.OnStop; fn != nil {
		fn(reason)
	}
	e.cancel() // the publisher, the relay refresh and the control loop have nothing left to do
}

// Err is why the engine stopped (an error wrapping ErrCutOff), or nil while it runs.
func (e *Engine) Err() error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.stopErr
}
