package coordinator

// Users and their API tokens: creating a user with its personal organization, issuing
// tokens, reading users.

import (
	"context"
	"errors"
	"net/netip"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// CreateUser creates a user with its personal organization (same name, the user as owner, a
// fresh IPv4 block and IPv6 prefix).
func (s *Server) CreateUser(ctx context.Context, username string) (api.CreateUserResponse, error) {
	if err := validName("username", username); err != nil {
		return api.CreateUserResponse{}, err
	}
	resp, err := inTx(ctx, s.store, func(tx store.Tx) (api.CreateUserResponse, error) {
		u, o, err := s.createUserTx(ctx, tx, username)
		return api.CreateUserResponse{User: apiUser(u), PersonalOrganizationID: o.ID}, err
	})
	if err != nil {
		return api.CreateUserResponse{}, err
	}
	s.log.Info("user created", "user_id", resp.User.ID, "username", resp.User.Username)
	return resp, nil
}

// createUserTx creates a user with its personal organization inside tx: the one way users are
// made, by the admin (CreateUser) and by signing up with an OpenID provider.
func (s *Server) createUserTx(ctx context.Context, tx store.Tx, username string) (store.User, store.Organization, error) {
	if _, err := tx.GetUserByUsername(ctx, username); err == nil {
		return store.User{}, store.Organization{}, errorf(ErrConflict, "username %q is taken", username)
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.User{}, store.Organization{}, err
	}
	u := store.User{ID: newID(), Username: username, CreatedAt: s.now()}
	if err := tx.CreateUser(ctx, u); err != nil {
		return u, store.Organization{}, conflict(err, "username %q is taken", username)
	}
	o, err := s.newOrganization(ctx, tx, u.ID, username, "", netip.Prefix{}, true)
	return u, o, err
}

// CreateToken issues a user API token. The returned Token carries the secret in bearer form.
func (s *Server) CreateToken(ctx context.Context, userID string, req api.CreateTokenRequest) (api.Token, error) {
	ttl, err := parseCredential(req.Description, req.ExpiresInSeconds)
	if err != nil {
		return api.Token{}, err
	}
	t, err := inTx(ctx, s.store, func(tx store.Tx) (api.Token, error) {
		if _, err := tx.GetUser(ctx, userID); err != nil {
			return api.Token{}, notFound(err, "user not found")
		}
		now, secret := s.now(), newSecret()
		t := store.Token{ID: newID(), UserID: userID, Description: req.Description, SecretHash: hashSecret(secret),
			ExpiresAt: expiry(now, ttl), CreatedAt: now}
		return api.Token{ID: t.ID, UserID: userID, Description: t.Description, ExpiresAt: t.ExpiresAt,
			CreatedAt: now, Secret: formatToken(api.UserTokenPrefix, t.ID, secret)}, tx.CreateToken(ctx, t)
	})
	if err != nil {
		return api.Token{}, err
	}
	s.log.Info("user token issued", "user_id", userID, "token_id", t.ID)
	return t, nil
}

// createUser is CreateUser for the admin's POST /users.
func (s *Server) createUser(ctx context.Context, _ Principal, req api.CreateUserRequest) (api.CreateUserResponse, error) {
	return s.CreateUser(ctx, req.Username)
}

// createToken is CreateToken for the admin's POST /users/{id}/tokens.
func (s *Server) createToken(ctx context.Context, _ Principal, userID string, req api.CreateTokenRequest) (api.Token, error) {
	return s.CreateToken(ctx, userID, req)
}

func (s *Server) listUsers(ctx context.Context, _ Principal) ([]api.User, error) {
	return inTx(ctx, s.store, func(tx store.Tx) ([]api.User, error) {
		us, err := tx.ListUsers(ctx)
		return convert(us, apiUser), err
	})
}

// me is the caller's own user.
func (s *Server) me(ctx context.Context, p Principal) (api.User, error) {
	return inTx(ctx, s.store, func(tx store.Tx) (api.User, error) {
		u, err := tx.GetUser(ctx, p.UserID)
		return apiUser(u), notFound(err, "user not found")
	})
}
