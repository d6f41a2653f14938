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
// the deployment's STUN servers and TURN URLs ([Config.STUNServers], [Config.TURNServers]) with
// TURN credentials minted for that device from [Config.RelaySecret] (the TURN REST scheme of
// internal/turncred, which the relay in package relay and coturn's use-auth-secret verify).
// Credentials are valid for [Config.RelayCredentialTTL]; the coordinator keeps no record of
// them. A device fetches fresh ones before ExpiresAt (for example once two thirds of the
// lifetime have passed): the coordinator does not push EventRelay events on the stream, since
// the event log is persistent and replayed, which is no place for credentials. A deleted device
// (also one deleted because its owner left or was removed from the organization) has no valid
// token any more and gets 401; credentials minted before stay valid until they expire, so keep
// the TTL short where that matters.

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

// relayConfig is what device deviceID is told about relays now.
func (s *Server) relayConfig(deviceID string) api.RelayConfig {
	rc := api.RelayConfig{STUN: slices.Clone(s.cfg.STUNServers)}
	if len(s.cfg.RelaySecret) == 0 || len(s.cfg.TURNServers) == 0 {
		return rc
	}
	// The username carries whole seconds: report the expiry the relay will enforce.
	exp := s.now().Add(s.cfg.RelayCredentialTTL).Truncate(time.Second)
	rc.TURN = slices.Clone(s.cfg.TURNServers)
	rc.Username, rc.Password = turncred.Mint(s.cfg.RelaySecret, deviceID, exp)
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
	err = s.store.Tx(ctx, func(tx store.Tx) error {
		_, acc, err := loadDevice(ctx, tx, p, id)
		if err != nil {
			return err
		}
		if !acc.self {
			return errorf(ErrForbidden, "a device may fetch only its own relay credentials")
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, s.relayConfig(id))
	return nil
}
