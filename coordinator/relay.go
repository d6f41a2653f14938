package coordinator

// Relay configuration: a device asks GET /devices/{id}/relay with its own token and receives
// STUN servers and TURN URLs with TURN credentials minted for that device (the TURN REST scheme
// of internal/turncred, which the relay in package relay and coturn's use-auth-secret verify):
// its organization's own relays and secret when the organization has set them (orgrelays.go),
// else the deployment's ([Config.STUNServers], [Config.TURNServers], [Config.RelaySecret]).
// Credentials are valid for [Config.RelayCredentialTTL]; the coordinator keeps no record of
// them.
//
// The same configuration is pushed on the device's event stream as an api.EventRelay event:
// once after the stream's first batch of events, again when half the credentials' lifetime has
// passed, and whenever the organization's relays change (at once on the replica that changed
// them, within one heartbeat on other replicas sharing the store). Relay events are made per
// stream and never stored: the event log is persistent and replayed, which is no place for
// credentials, and a reconnecting stream gets fresh ones anyway. So they carry no revision and
// do not move a client's resume point. A device whose stream is down fetches fresh credentials
// before ExpiresAt itself. A deleted device (also one deleted because its owner left or was
// removed from the organization) has no valid token any more and gets 401; credentials minted
// before stay valid until they expire, so keep the TTL short where that matters.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
	"github.com/nexodus-sdk/nexodus/internal/turncred"
)

// relaySource is where a device's relay configuration comes from: its organization's relays or
// the coordinator's defaults.
type relaySource struct {
	orgID  string // set for an organization's own relays
	stun   []string
	turn   []string
	secret []byte // the coordinator's secret, or the organization's stored (sealed) form
	// key identifies the source's content, so an event stream can tell that it changed.
	key string
}

func (src relaySource) empty() bool { return len(src.stun) == 0 && len(src.turn) == 0 }

// relaySourceFor loads the relays devices of the organization use.
func (s *Server) relaySourceFor(ctx context.Context, tx store.Tx, orgID string) (relaySource, error) {
	r, err := tx.GetOrgRelays(ctx, orgID)
	if errors.Is(err, store.ErrNotFound) {
		src := relaySource{stun: s.cfg.STUNServers, secret: s.cfg.RelaySecret, key: "default"}
		if len(s.cfg.RelaySecret) > 0 {
			src.turn = s.cfg.TURNServers
		}
		return src, nil
	}
	if err != nil {
		return relaySource{}, err
	}
	// The sealed secret's random nonce makes every PUT a new key, even one repeating the
	// same values: devices then get fresh credentials, which is what an owner re-setting
	// the relays expects.
	h := sha256.New()
	for _, l := range [][]string{r.STUNServers, r.TURNServers} {
		for _, v := range l {
			h.Write([]byte(v))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	h.Write(r.Secret)
	return relaySource{
		orgID: orgID, stun: r.STUNServers, turn: r.TURNServers, secret: r.Secret,
		key: "org:" + orgID + ":" + hex.EncodeToString(h.Sum(nil)),
	}, nil
}

// relayConfig is what device deviceID is told about relays now, from src.
func (s *Server) relayConfig(deviceID string, src relaySource) (api.RelayConfig, error) {
	secret := src.secret
	if src.orgID != "" {
		var err error
		if secret, err = s.openSecret(src.orgID, src.secret); err != nil {
			return api.RelayConfig{}, err
		}
	}
	return s.mintRelay(deviceID, src.stun, src.turn, secret), nil
}

// mintRelay is what device deviceID is told about relays now: the servers, and credentials
// minted from secret when there are TURN servers and a secret.
func (s *Server) mintRelay(deviceID string, stun, turn []string, secret []byte) api.RelayConfig {
	rc := api.RelayConfig{STUN: slices.Clone(stun)}
	if len(secret) == 0 || len(turn) == 0 {
		return rc
	}
	// The username carries whole seconds: report the expiry the relay will enforce.
	exp := s.now().Add(s.cfg.RelayCredentialTTL).Truncate(time.Second)
	rc.TURN = slices.Clone(turn)
	rc.Username, rc.Password = turncred.Mint(secret, deviceID, exp)
	rc.ExpiresAt = exp
	return rc
}

// deviceRelay is a device's own relay configuration.
func (s *Server) deviceRelay(ctx context.Context, p Principal, id string) (api.RelayConfig, error) {
	src, err := inTx(ctx, s.store, func(tx store.Tx) (relaySource, error) {
		d, acc, err := loadDevice(ctx, tx, p, id)
		if err != nil {
			return relaySource{}, err
		}
		if !acc.self {
			return relaySource{}, errorf(ErrForbidden, "a device may fetch only its own relay credentials")
		}
		return s.relaySourceFor(ctx, tx, d.OrganizationID)
	})
	if err != nil {
		return api.RelayConfig{}, err
	}
	// A secret that does not open is the operator's problem: 500, logged.
	return s.relayConfig(id, src)
}
