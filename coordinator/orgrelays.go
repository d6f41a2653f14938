package coordinator

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// Organization relays: an owner names the organization's own TURN relays (and optionally STUN
// servers) with the secret those relays share; devices of the organization then get those
// servers and credentials minted from that secret instead of the coordinator's defaults.
//
// The secret cannot be hashed like the coordinator's other secrets: minting a TURN REST
// credential is an HMAC keyed with the secret itself, so the coordinator must be able to read
// it back. It is sealed at rest with AES-256-GCM under a key derived from [Config.SealKey],
// bound to the organization's ID (a sealed secret copied to another organization's row does not
// open). Without a SealKey it is stored as given, and then only access to the database (file
// permissions, disk encryption, backups) protects it, as the relays' own configuration files
// protect their copy; the coordinator logs a warning each time it stores one that way.

// ErrSealed is returned (wrapped) when a stored organization relay secret cannot be opened: it
// was sealed and Config.SealKey is missing or another key.
var ErrSealed = errors.New("coordinator: cannot open sealed relay secret")

// Stored secret formats: one version byte, then the payload.
const (
	secretPlain  = 0x00 // the secret as given
	secretSealed = 0x01 // 12-byte nonce || AES-256-GCM ciphertext with tag
)

const sealInfo = "nexodus coordinator: organization relay secret v1"

// newSealer derives the AEAD that seals organization relay secrets from Config.SealKey; nil
// without a key.
func newSealer(key []byte) (cipher.AEAD, error) {
	if len(key) == 0 {
		return nil, nil
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("coordinator: SealKey must be 32 bytes, not %d", len(key))
	}
	// A derived key keeps SealKey usable for other purposes later without key reuse.
	k, err := hkdf.Key(sha256.New, key, nil, sealInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("coordinator: derive seal key: %w", err)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("coordinator: seal key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("coordinator: seal key: %w", err)
	}
	return aead, nil
}

// sealSecret returns the stored form of an organization's relay secret.
func (s *Server) sealSecret(orgID string, secret []byte) []byte {
	if s.sealer == nil {
		return append([]byte{secretPlain}, secret...)
	}
	nonce := make([]byte, s.sealer.NonceSize())
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails
	out := append([]byte{secretSealed}, nonce...)
	return s.sealer.Seal(out, nonce, secret, []byte(orgID))
}

// openSecret reverses sealSecret.
func (s *Server) openSecret(orgID string, stored []byte) ([]byte, error) {
	if len(stored) == 0 {
		return nil, fmt.Errorf("%w: organization %s: empty", ErrSealed, orgID)
	}
	switch stored[0] {
	case secretPlain:
		return stored[1:], nil
	case secretSealed:
		if s.sealer == nil {
			return nil, fmt.Errorf("%w: organization %s: Config.SealKey is not set", ErrSealed, orgID)
		}
		n := s.sealer.NonceSize()
		if len(stored) < 1+n+s.sealer.Overhead() {
			return nil, fmt.Errorf("%w: organization %s: truncated", ErrSealed, orgID)
		}
		secret, err := s.sealer.Open(nil, stored[1:1+n], stored[1+n:], []byte(orgID))
		if err != nil {
			return nil, fmt.Errorf("%w: organization %s: wrong SealKey or tampered row", ErrSealed, orgID)
		}
		return secret, nil
	default:
		return nil, fmt.Errorf("%w: organization %s: unknown format %d", ErrSealed, orgID, stored[0])
	}
}

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

// handleSetOrgRelays answers PUT /organizations/{id}/relays (owner).
func (s *Server) handleSetOrgRelays(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := p.requireUser(); err != nil {
		return err
	}
	id, err := pathID(r, "id", "organization id")
	if err != nil {
		return err
	}
	var req api.SetOrgRelaysRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	stun, turn, secret, err := parseOrgRelays(req)
	if err != nil {
		return err
	}
	ctx := r.Context()
	rec := store.OrgRelays{OrganizationID: id, STUNServers: stun, TURNServers: turn, Secret: s.sealSecret(id, secret), UpdatedAt: s.now()}
	err = s.store.Tx(ctx, func(tx store.Tx) error {
		if _, _, err := ownerOf(ctx, tx, id, p.UserID); err != nil {
			return err
		}
		return notFound(tx.SetOrgRelays(ctx, rec), "organization not found")
	})
	if err != nil {
		return err
	}
	if s.sealer == nil {
		s.log.Warn("organization relay secret stored unsealed: set the coordinator's SealKey", "org_id", id)
	}
	s.hub.broadcast() // device streams of the organization push the new relays
	s.log.Info("organization relays set", "org_id", id, "by", p.UserID, "turn", turn, "stun", stun)
	writeJSON(w, http.StatusOK, apiOrgRelays(rec))
	return nil
}

// handleGetOrgRelays answers GET /organizations/{id}/relays (member): the servers, never the
// secret.
func (s *Server) handleGetOrgRelays(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := p.requireUser(); err != nil {
		return err
	}
	id, err := pathID(r, "id", "organization id")
	if err != nil {
		return err
	}
	ctx := r.Context()
	var rec store.OrgRelays
	err = s.store.Tx(ctx, func(tx store.Tx) error {
		if _, _, err := memberOf(ctx, tx, id, p.UserID); err != nil {
			return err
		}
		rec, err = tx.GetOrgRelays(ctx, id)
		return notFound(err, "the organization has no relays of its own; its devices use the coordinator's")
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, apiOrgRelays(rec))
	return nil
}

// handleDeleteOrgRelays answers DELETE /organizations/{id}/relays (owner): the organization's
// devices go back to the coordinator's default relays.
func (s *Server) handleDeleteOrgRelays(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := p.requireUser(); err != nil {
		return err
	}
	id, err := pathID(r, "id", "organization id")
	if err != nil {
		return err
	}
	ctx := r.Context()
	err = s.store.Tx(ctx, func(tx store.Tx) error {
		if _, _, err := ownerOf(ctx, tx, id, p.UserID); err != nil {
			return err
		}
		return notFound(tx.DeleteOrgRelays(ctx, id), "the organization has no relays of its own")
	})
	if err != nil {
		return err
	}
	s.hub.broadcast()
	s.log.Info("organization relays cleared", "org_id", id, "by", p.UserID)
	w.WriteHeader(http.StatusNoContent)
	return nil
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
