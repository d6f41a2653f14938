package coordinator

// Self-service API tokens: a user creates (with a name and an optional expiry), lists and
// revokes their own. Every request re-reads its token, so a revoked token stops working at
// once; event streams opened with it re-check and end.

import (
	"context"
	"strings"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func apiToken(t store.Token) api.Token {
	return api.Token{ID: t.ID, UserID: t.UserID, Description: t.Description, ExpiresAt: t.ExpiresAt, CreatedAt: t.CreatedAt}
}

// createMyToken issues the caller a token of their own (POST /users/me/tokens). Unlike the
// admin's, it must be named, so that its owner can tell their tokens apart.
func (s *Server) createMyToken(ctx context.Context, p Principal, req api.CreateTokenRequest) (api.Token, error) {
	if strings.TrimSpace(req.Description) == "" {
		return api.Token{}, errorf(ErrBadRequest, "a token needs a name (description) to tell it apart")
	}
	return s.CreateToken(ctx, p.UserID, req)
}

// listMyTokens lists the caller's tokens without their secrets.
func (s *Server) listMyTokens(ctx context.Context, p Principal) ([]api.Token, error) {
	return inTx(ctx, s.store, func(tx store.Tx) ([]api.Token, error) {
		ts, err := tx.ListTokensForUser(ctx, p.UserID)
		return convert(ts, apiToken), err
	})
}

// revokeMyToken deletes one of the caller's tokens; another user's token is not there (404).
func (s *Server) revokeMyToken(ctx context.Context, p Principal, id string) (noContent, error) {
	err := s.store.Tx(ctx, func(tx store.Tx) error {
		t, err := tx.GetToken(ctx, id)
		if err != nil || t.UserID != p.UserID {
			return errorf(ErrNotFound, "token not found")
		}
		return notFound(tx.DeleteToken(ctx, id), "token not found")
	})
	if err != nil {
		return noContent{}, err
	}
	s.hub.broadcast() // streams opened with the token re-check and end
	s.log.Info("user token revoked", "user_id", p.UserID, "token_id", id)
	return noContent{}, nil
}
