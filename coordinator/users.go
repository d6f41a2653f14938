package coordinator

import (
	"context"
	"errors"
	"net/http"
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
	var resp api.CreateUserResponse
	err := s.store.Tx(ctx, func(tx store.Tx) error {
		now := s.now()
		if _, err := tx.GetUserByUsername(ctx, username); err == nil {
			return errorf(ErrConflict, "username %q is taken", username)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		u := store.User{ID: newID(), Username: username, CreatedAt: now}
		if err := tx.CreateUser(ctx, u); err != nil {
			return conflict(err, "username %q is taken", username)
		}
		o, err := s.newOrganization(ctx, tx, u.ID, username, "", netip.Prefix{}, true)
		if err != nil {
			return err
		}
		resp = api.CreateUserResponse{User: apiUser(u), PersonalOrganizationID: o.ID}
		return nil
	})
	return resp, err
}

// conflict replaces store.ErrConflict with a domain 409 carrying a message.
func conflict(err error, format string, args ...any) error {
	if errors.Is(err, store.ErrConflict) {
		return errorf(ErrConflict, format, args...)
	}
	return err
}

func (s *Server) handleCreateUser(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := p.requireAdmin(); err != nil {
		return err
	}
	var req api.CreateUserRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	resp, err := s.CreateUser(r.Context(), req.Username)
	if err != nil {
		return err
	}
	s.log.Info("user created", "user_id", resp.User.ID, "username", resp.User.Username)
	writeJSON(w, http.StatusCreated, resp)
	return nil
}

func (s *Server) handleListUsers(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := p.requireAdmin(); err != nil {
		return err
	}
	var out []api.User
	err := s.store.Tx(r.Context(), func(tx store.Tx) error {
		us, err := tx.ListUsers(r.Context())
		if err != nil {
			return err
		}
		out = make([]api.User, 0, len(us))
		for _, u := range us {
			out = append(out, apiUser(u))
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleMe(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := p.requireUser(); err != nil {
		return err
	}
	var u store.User
	err := s.store.Tx(r.Context(), func(tx store.Tx) error {
		var err error
		u, err = tx.GetUser(r.Context(), p.UserID)
		return notFound(err, "user not found")
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, apiUser(u))
	return nil
}

// CreateToken issues a user API token. The returned Token carries the secret in bearer form.
func (s *Server) CreateToken(ctx context.Context, userID string, req api.CreateTokenRequest) (api.Token, error) {
	if err := validDescription(req.Description); err != nil {
		return api.Token{}, err
	}
	ttl, err := parseExpiresIn(req.ExpiresInSeconds, 0)
	if err != nil {
		return api.Token{}, err
	}
	var out api.Token
	err = s.store.Tx(ctx, func(tx store.Tx) error {
		if _, err := tx.GetUser(ctx, userID); err != nil {
			return notFound(err, "user not found")
		}
		now := s.now()
		secret := newSecret()
		t := store.Token{ID: newID(), UserID: userID, Description: req.Description, SecretHash: hashSecret(secret), CreatedAt: now}
		if ttl > 0 {
			exp := now.Add(ttl)
			t.ExpiresAt = &exp
		}
		if err := tx.CreateToken(ctx, t); err != nil {
			return err
		}
		out = api.Token{ID: t.ID, UserID: userID, Description: t.Description, ExpiresAt: t.ExpiresAt,
			CreatedAt: now, Secret: formatToken(api.UserTokenPrefix, t.ID, secret)}
		return nil
	})
	return out, err
}

func (s *Server) handleCreateToken(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := p.requireAdmin(); err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := checkID("user id", id); err != nil {
		return err
	}
	var req api.CreateTokenRequest
	if err := decodeJSON(w, r, &req, true); err != nil {
		return err
	}
	t, err := s.CreateToken(r.Context(), id, req)
	if err != nil {
		return err
	}
	s.log.Info("user token issued", "user_id", id, "token_id", t.ID)
	writeJSON(w, http.StatusCreated, t)
	return nil
}
