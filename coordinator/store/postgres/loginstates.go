package postgres

// The login_states table: OpenID sign-ins in progress, taken once by their callback.

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

const loginStateCols = `state_hash, provider, nonce, verifier, return_to, COALESCE(link_user_id, ''), expires_at, created_at`

func (t *tx) CreateLoginState(ctx context.Context, l store.LoginState) error {
	return t.exec(ctx, "create login state", false,
		`INSERT INTO login_states (state_hash, provider, nonce, verifier, return_to, link_user_id, expires_at, created_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		nonNilBytes(l.StateHash), l.Provider, l.Nonce, l.Verifier, l.ReturnTo, nullIfEmpty(l.LinkUserID), l.ExpiresAt, l.CreatedAt)
}

// TakeLoginState deletes with RETURNING, so two callbacks with the same state cannot both get
// the row. The error names no part of the hash: it is a credential.
func (t *tx) TakeLoginState(ctx context.Context, stateHash []byte) (store.LoginState, error) {
	var l store.LoginState
	err := t.write(ctx, "take login state", false, func(r pgx.Row) error {
		return r.Scan(&l.StateHash, &l.Provider, &l.Nonce, &l.Verifier, &l.ReturnTo, &l.LinkUserID, &l.ExpiresAt, &l.CreatedAt)
	}, `DELETE FROM login_states WHERE state_hash = $1 RETURNING `+loginStateCols, nonNilBytes(stateHash))
	return l, err
}
