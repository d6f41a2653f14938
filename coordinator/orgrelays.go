package coordinator

// Organization relays: an owner names the organization's own TURN relays (and optionally STUN
// servers) with the secret those relays share; devices of the organization then get those
// servers and credentials minted from that secret instead of the coordinator's defaults.
//
// (seal.go keeps their secrets sealed at rest.)

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// setOrgRelays creates or replaces the organization's relays (owners only).
func (s *Server) setOrgRelays(ctx context.Context, p Principal, id string, req api.SetOrgRelaysRequest) (api.OrgRelays, error) {
	stun, turn, secret, err := parseOrgRelays(req)
	if err != nil {
		return api.OrgRelays{}, err
	}
	rec := store.OrgRelays{OrganizationID: id, STUNServers: stun, TURNServers: turn, Secret: s.sealSecret(id, secret), UpdatedAt: s.now()}
	err = s.store.Tx(ctx, func(tx store.Tx) error {
		if _, _, err := ownerOf(ctx, tx, id, p.UserID); err != nil {
			return err
		}
		return notFound(tx.SetOrgRelays(ctx, rec), "organization not found")
	})
	if err != nil {
		return api.OrgRelays{}, err
	}
	if s.sealer == nil {
		s.log.Warn("organization relay secret stored unsealed: set the coordinator's SealKey", "org_id", id)
	}
	s.hub.broadcast() // device streams of the organization push the new relays
	s.log.Info("organization relays set", "org_id", id, "by", p.UserID, "turn", turn, "stun", stun)
	return apiOrgRelays(rec), nil
}

// getOrgRelays answers the organization's relays to its members: the servers, never the
// secret.
func (s *Server) getOrgRelays(ctx context.Context, p Principal, id string) (api.OrgRelays, error) {
	return inTx(ctx, s.store, func(tx store.Tx) (api.OrgRelays, error) {
		if _, _, err := memberOf(ctx, tx, id, p.UserID); err != nil {
			return api.OrgRelays{}, err
		}
		rec, err := tx.GetOrgRelays(ctx, id)
		return apiOrgRelays(rec), notFound(err, "the organization has no relays of its own; its devices use the coordinator's")
	})
}

// deleteOrgRelays clears the organization's relays (owners only): its devices go back to the
// coordinator's.
func (s *Server) deleteOrgRelays(ctx context.Context, p Principal, id string) (noContent, error) {
	err := s.store.Tx(ctx, func(tx store.Tx) error {
		if _, _, err := ownerOf(ctx, tx, id, p.UserID); err != nil {
			return err
		}
		return notFound(tx.DeleteOrgRelays(ctx, id), "the organization has no relays of its own")
	})
	if err != nil {
		return noContent{}, err
	}
	s.hub.broadcast()
	s.log.Info("organization relays cleared", "org_id", id, "by", p.UserID)
	return noContent{}, nil
}

func apiOrgRelays(r store.OrgRelays) api.OrgRelays {
	stun, turn := slices.Clone(r.STUNServers), slices.Clone(r.TURNServers)
	if stun == nil {
		stun = []string{}
	}
	if turn == nil {
		turn = []string{}
	}
	return api.OrgRelays{OrganizationID: r.OrganizationID, STUN: stun, TURN: turn, UpdatedAt: r.UpdatedAt}
}

// parseOrgRelays validates a PUT /organizations/{id}/relays body, dropping duplicate servers.
func parseOrgRelays(req api.SetOrgRelaysRequest) (stun, turn []string, secret []byte, err error) {
	if len(req.TURN) == 0 {
		return nil, nil, nil, errorf(ErrBadRequest, "turn needs at least one TURN URL")
	}
	if len(req.TURN) > api.MaxRelayServers || len(req.STUN) > api.MaxRelayServers {
		return nil, nil, nil, errorf(ErrBadRequest, "more than %d servers in turn or stun", api.MaxRelayServers)
	}
	for _, u := range req.TURN {
		if err := validTURNURL(u); err != nil {
			return nil, nil, nil, err
		}
		if !slices.Contains(turn, u) {
			turn = append(turn, u)
		}
	}
	for _, hp := range req.STUN {
		if err := validSTUNServer(hp); err != nil {
			return nil, nil, nil, err
		}
		if !slices.Contains(stun, hp) {
			stun = append(stun, hp)
		}
	}
	if err := validRelaySecret(req.Secret); err != nil {
		return nil, nil, nil, err
	}
	return stun, turn, []byte(req.Secret), nil
}

// validTURNURL accepts exactly "turn:HOST:PORT?transport=udp|tcp" and the same with "turns:":
// what natt's TURN client and the relay in package relay understand, with nothing left to a
// default the two sides might disagree on.
func validTURNURL(u string) error {
	if len(u) > api.MaxRelayURLLength {
		return errorf(ErrBadRequest, "TURN URL longer than %d bytes", api.MaxRelayURLLength)
	}
	rest, ok := strings.CutPrefix(u, "turn:")
	if !ok {
		rest, ok = strings.CutPrefix(u, "turns:")
	}
	if !ok {
		return errorf(ErrBadRequest, "TURN URL %q must start with turn: or turns:", truncate(u, 64))
	}
	hostport, query, _ := strings.Cut(rest, "?")
	if query != "transport=udp" && query != "transport=tcp" {
		return errorf(ErrBadRequest, "TURN URL %q must end with ?transport=udp or ?transport=tcp", truncate(u, 64))
	}
	if err := validHostPort(hostport); err != nil {
		return errorf(ErrBadRequest, "TURN URL %q: %s", truncate(u, 64), err)
	}
	return nil
}

// validSTUNServer accepts "HOST:PORT".
func validSTUNServer(hp string) error {
	if len(hp) > api.MaxRelayURLLength {
		return errorf(ErrBadRequest, "STUN server longer than %d bytes", api.MaxRelayURLLength)
	}
	if err := validHostPort(hp); err != nil {
		return errorf(ErrBadRequest, "STUN server %q: %s", truncate(hp, 64), err)
	}
	return nil
}

// validHostPort checks "HOST:PORT": a DNS name, an IPv4 address or a bracketed IPv6 address,
// and a port from 1 to 65535.
func validHostPort(hp string) error {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return errors.New("want host:port (an IPv6 address in brackets)")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 || port[0] == '0' {
		return errors.New("port must be 1 to 65535")
	}
	bracketed := strings.HasPrefix(hp, "[")
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() {
			return errors.New("not a usable unicast address")
		}
		if a.Is4() == bracketed {
			return errors.New("an IPv6 address goes in brackets, an IPv4 address does not")
		}
		return nil
	}
	if bracketed || !validDNSName(host) {
		return errors.New("host is neither an IP address nor a DNS name")
	}
	return nil
}

// validDNSName checks a hostname: dot-separated labels of letters, digits and '-', each 1 to
// 63 long and not starting or ending with '-', at most 253 in all, not all digits (which would
// be a malformed IPv4 address).
func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	digits := true
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-':
				digits = false
			default:
				return false
			}
		}
	}
	return !digits
}

// validRelaySecret checks an organization's relay secret: printable ASCII without spaces, so it
// reads the same in a relay's configuration file.
func validRelaySecret(s string) error {
	if len(s) < api.MinRelaySecret || len(s) > api.MaxRelaySecret {
		return errorf(ErrBadRequest, "secret must be %d to %d characters", api.MinRelaySecret, api.MaxRelaySecret)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return errorf(ErrBadRequest, "secret must be printable ASCII without spaces")
		}
	}
	return nil
}
