package coordinator

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
	"github.com/nexodus-sdk/nexodus/internal/turncred"
)

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

// validateRelayConfig checks the relay fields of cfg and fills in defaults.
func validateRelayConfig(cfg *Config) error {
	if cfg.RelayCredentialTTL < 0 {
		return fmt.Errorf("coordinator: RelayCredentialTTL %s is negative", cfg.RelayCredentialTTL)
	}
	if cfg.RelayCredentialTTL == 0 {
		cfg.RelayCredentialTTL = 12 * time.Hour
	}
	for _, s := range cfg.STUNServers {
		if host, port, err := net.SplitHostPort(s); err != nil || host == "" || port == "" {
			return fmt.Errorf("coordinator: STUN server %q is not host:port", s)
		}
	}
	for _, u := range cfg.TURNServers {
		if !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") || strings.ContainsAny(u, " \t\r\n") {
			return fmt.Errorf("coordinator: TURN server %q is not a turn: or turns: URL", u)
		}
	}
	if len(cfg.TURNServers) > 0 && len(cfg.RelaySecret) == 0 {
		return fmt.Errorf("coordinator: TURNServers need a RelaySecret to mint credentials with")
	}
	cfg.STUNServers = slices.Clone(cfg.STUNServers)
	cfg.TURNServers = slices.Clone(cfg.TURNServers)
	cfg.RelaySecret = slices.Clone(cfg.RelaySecret)
	return nil
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

// handleDeviceRelay answers GET /devices/{id}/relay for the device itself.
func (s *Server) handleDeviceRelay(w http.ResponseWriter, r *http.Request, p Principal) error {
	if p.Kind != KindDevice {
		return errorf(ErrForbidden, "relay credentials need the device's own token")
	}
	id, err := pathID(r, "id", "device id")
	if err != nil {
		return err
	}
	ctx := r.Context()
	var src relaySource
	err = s.store.Tx(ctx, func(tx store.Tx) error {
		d, acc, err := loadDevice(ctx, tx, p, id)
		if err != nil {
			return err
		}
		if !acc.self {
			return errorf(ErrForbidden, "a device may fetch only its own relay credentials")
		}
		src, err = s.relaySourceFor(ctx, tx, d.OrganizationID)
		return err
	})
	if err != nil {
		return err
	}
	rc, err := s.relayConfig(id, src)
	if err != nil {
		return err // a secret that does not open is the operator's problem: 500, logged
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, rc)
	return nil
}
