package coordinator

// Authentication: the credentials a request may carry (admin token, user tokens, registration
// keys, device tokens, an external scheme) and the Principal each one becomes.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// PrincipalKind says what kind of credential authenticated a request.
type PrincipalKind string

// Principal kinds.
const (
	KindAdmin  PrincipalKind = "admin"  // the bootstrap admin token
	KindUser   PrincipalKind = "user"   // a user API token (or an external identity, e.g. OIDC)
	KindRegKey PrincipalKind = "regkey" // a registration key
	KindDevice PrincipalKind = "device" // a device token
)

// Principal is the authenticated caller of a request.
type Principal struct {
	Kind PrincipalKind
	// UserID is the user (KindUser), the key's owner (KindRegKey) or the device's owner
	// (KindDevice).
	UserID string
	// OrganizationID is the key's organization (KindRegKey) or the device's (KindDevice).
	OrganizationID string
	// RegKeyID is set for KindRegKey.
	RegKeyID string
	// DeviceID is set for KindDevice.
	DeviceID string
	// TokenID is set for KindDevice (which of the device's tokens authenticated the request,
	// so that an event stream can end when that token is replaced) and for a KindUser API
	// token (so that an event stream can end when the token is revoked).
	TokenID string
	// ExpiresAt is when the credential expires (zero: never); an event stream opened with it
	// ends then.
	ExpiresAt time.Time
}

// Authenticator turns a request's credentials into a Principal. It returns an error wrapping
// [ErrUnauthorized] when the credential is missing or invalid. [Config.Authenticator] plugs an
// external scheme (such as OIDC bearer tokens) in beside the built-in tokens: it is consulted
// for bearer tokens that are neither the admin token nor carry one of the coordinator's token
// prefixes, and it must return a KindUser principal naming an existing user.
type Authenticator interface {
	Authenticate(r *http.Request) (Principal, error)
}

// AuthenticatorFunc adapts a function to [Authenticator].
type AuthenticatorFunc func(r *http.Request) (Principal, error)

// Authenticate calls f(r).
func (f AuthenticatorFunc) Authenticate(r *http.Request) (Principal, error) { return f(r) }

var errBadCredential = errorf(ErrUnauthorized, "invalid or expired credential")

// bearerToken extracts the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// splitToken splits "<prefix><id>.<secret>" into id and secret, validating their shape.
func splitToken(tok, prefix string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(tok, prefix)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, ".")
	if !ok || !validID(id) || secret == "" || len(secret) > 128 {
		return "", "", false
	}
	return id, secret, true
}

// formatToken builds the bearer form of a credential.
func formatToken(prefix, id, secret string) string { return prefix + id + "." + secret }

func secretMatches(secret string, hash []byte) bool {
	return subtle.ConstantTimeCompare(hashSecret(secret), hash) == 1
}

// tokenAuthenticator is the built-in scheme: admin token, user tokens, registration keys and
// device tokens.
type tokenAuthenticator struct{ s *Server }

func (a tokenAuthenticator) Authenticate(r *http.Request) (Principal, error) {
	s := a.s
	tok, ok := bearerToken(r)
	if !ok {
		return Principal{}, errorf(ErrUnauthorized, "missing bearer token")
	}
	switch {
	case strings.HasPrefix(tok, api.UserTokenPrefix):
		return s.authUserToken(r.Context(), tok)
	case strings.HasPrefix(tok, api.RegKeyPrefix):
		return s.authRegKey(r.Context(), tok)
	case strings.HasPrefix(tok, api.DeviceTokenPrefix):
		return s.authDeviceToken(r.Context(), tok)
	}
	if s.adminHash != nil {
		h := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(h[:], s.adminHash) == 1 {
			return Principal{Kind: KindAdmin}, nil
		}
	}
	if s.cfg.Authenticator == nil {
		return Principal{}, errBadCredential
	}
	p, err := s.cfg.Authenticator.Authenticate(r)
	if err != nil {
		return Principal{}, err
	}
	if p.Kind != KindUser || !validID(p.UserID) {
		return Principal{}, errBadCredential
	}
	if _, err := inTx(r.Context(), s.store, func(tx store.Tx) (store.User, error) { return tx.GetUser(r.Context(), p.UserID) }); err != nil {
		return Principal{}, authErr(err)
	}
	return Principal{Kind: KindUser, UserID: p.UserID}, nil
}

// credential authenticates a token of the given prefix: check, inside one transaction, turns
// the token's ID and secret into a Principal. Unknown IDs are bad credentials.
func (s *Server) credential(ctx context.Context, tok, prefix string, check func(tx store.Tx, id, secret string) (Principal, error)) (Principal, error) {
	id, secret, ok := splitToken(tok, prefix)
	if !ok {
		return Principal{}, errBadCredential
	}
	p, err := inTx(ctx, s.store, func(tx store.Tx) (Principal, error) { return check(tx, id, secret) })
	if err != nil {
		return Principal{}, authErr(err)
	}
	return p, nil
}

// expired reports whether an optional expiry has passed at now.
func expired(exp *time.Time, now time.Time) bool { return exp != nil && !now.Before(*exp) }

func (s *Server) authUserToken(ctx context.Context, tok string) (Principal, error) {
	return s.credential(ctx, tok, api.UserTokenPrefix, func(tx store.Tx, id, secret string) (Principal, error) {
		t, err := tx.GetToken(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			// Revoked, or never issued: either way this token will not work again.
			return Principal{}, refusedf(ErrUnauthorized, api.ReasonCredentialRevoked, "token revoked or unknown")
		}
		if err != nil {
			return Principal{}, err
		}
		if !secretMatches(secret, t.SecretHash) {
			return Principal{}, errBadCredential
		}
		if expired(t.ExpiresAt, s.now()) {
			return Principal{}, refusedf(ErrUnauthorized, api.ReasonCredentialExpired, "token expired")
		}
		if _, err := tx.GetUser(ctx, t.UserID); err != nil {
			return Principal{}, err
		}
		p := Principal{Kind: KindUser, UserID: t.UserID, TokenID: t.ID}
		if t.ExpiresAt != nil {
			p.ExpiresAt = *t.ExpiresAt
		}
		return p, nil
	})
}

func (s *Server) authRegKey(ctx context.Context, tok string) (Principal, error) {
	return s.credential(ctx, tok, api.RegKeyPrefix, func(tx store.Tx, id, secret string) (Principal, error) {
		k, err := tx.GetRegKey(ctx, id)
		if err != nil {
			return Principal{}, err
		}
		if !secretMatches(secret, k.SecretHash) {
			return Principal{}, errBadCredential
		}
		if err := s.regKeyUsable(ctx, tx, k); err != nil {
			return Principal{}, err
		}
		return Principal{Kind: KindRegKey, UserID: k.OwnerID, OrganizationID: k.OrganizationID, RegKeyID: k.ID}, nil
	})
}

// regKeyUsable reports whether a registration key may still register a device. The key acts
// for its owner, so it stops working when the owner leaves the organization (it starts
// working again if they rejoin).
func (s *Server) regKeyUsable(ctx context.Context, tx store.Tx, k store.RegKey) error {
	if expired(k.ExpiresAt, s.now()) {
		return errorf(ErrUnauthorized, "registration key expired")
	}
	if k.SingleUse && k.Used {
		return errorf(ErrUnauthorized, "registration key already used")
	}
	if _, err := tx.GetMember(ctx, k.OrganizationID, k.OwnerID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errorf(ErrUnauthorized, "registration key's owner is no longer a member of its organization")
		}
		return err
	}
	return nil
}

func (s *Server) authDeviceToken(ctx context.Context, tok string) (Principal, error) {
	var promoted bool
	p, err := s.credential(ctx, tok, api.DeviceTokenPrefix, func(tx store.Tx, id, secret string) (Principal, error) {
		promoted = false
		d, err := tx.GetDevice(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			// A device token names its device: a node reconnecting after its device was
			// deleted learns that, not just "bad credential".
			return Principal{}, refusedf(ErrUnauthorized, api.ReasonDeviceRemoved, "device removed")
		}
		if err != nil {
			return Principal{}, err
		}
		// Both comparisons always run, so timing does not tell which token matched.
		current := secretMatches(secret, d.TokenHash)
		pending := secretMatches(secret, d.PendingTokenHash) && len(d.PendingTokenHash) > 0
		switch {
		case current:
		case pending:
			// Only the private-key holder could open the pending token: its first use proves
			// possession, so it becomes the device's token and the old one stops working.
			d.TokenID, d.TokenHash = d.PendingTokenID, d.PendingTokenHash
			d.PendingTokenID, d.PendingTokenHash = "", nil
			if err := tx.UpdateDevice(ctx, d); err != nil {
				return Principal{}, fmt.Errorf("promote pending device token: %w", err)
			}
			promoted = true
		default:
			return Principal{}, refusedf(ErrUnauthorized, api.ReasonCredentialRevoked, "device token revoked or replaced")
		}
		return Principal{Kind: KindDevice, UserID: d.OwnerID, OrganizationID: d.OrganizationID, DeviceID: d.ID, TokenID: d.TokenID}, nil
	})
	if err == nil && promoted {
		s.log.Info("device token replaced by its pending token", "device_id", p.DeviceID)
		s.hub.broadcast() // streams opened with the old token re-check and end
	}
	return p, err
}
