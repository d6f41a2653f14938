package sqlite

// The login_states table: OpenID sign-ins in progress, taken once by their callback.

import (
	"context"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

const loginStateCols = `state_hash, provider, nonce, verifier, return_to, COALESCE(link_user_id, ''), expires_at, created_at`

var scanLoginState = scanned(func(sc scanner, l *store.LoginState) error {
	return sc.Scan(&l.StateHash, &l.Provider, &l.Nonce, &l.Verifier, &l.ReturnTo, &l.LinkUserID,
		timeCol{&l.ExpiresAt}, timeCol{&l.CreatedAt})
})

func (t *tx) CreateLoginState(ctx context.Context, l store.LoginState) error {
	return t.exec(ctx, "create login state", false,
		`INSERT INTO login_states (state_hash, provider, nonce, verifier, return_to, link_user_id, expires_at, created_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		nonNilBytes(l.StateHash), l.Provider, l.Nonce, l.Verifier, l.ReturnTo, nullIfEmpty(l.LinkUserID),
		fmtTime(l.ExpiresAt), fmtTime(l.CreatedAt))
}

// TakeLoginState deletes with RETURNING, so two callbacks with the same state cannot both get
// the row. The error names no part of the hash: it is a credential.
func (t *tx) TakeLoginState(ctx context.Context, stateHash []byte) (store.LoginState, error) {
	return get(ctx, t, "take login state", scanLoginState,
		`DELETE FROM login_states WHERE state_hash = ? RETURNING `+loginStateCols, nonNilBytes(stateHash))
}

// nonNilBytes keeps a key column from being NULL: nil and empty are the same key.
func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
