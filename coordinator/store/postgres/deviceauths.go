package postgres

// The device_auths table: OAuth 2.0 device authorization grants (RFC 8628) in progress.

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

const deviceAuthCols = `id, device_code_hash, user_code, client_name, status, COALESCE(user_id, ''), expires_at, last_polled_at, created_at`

var scanDeviceAuth = scanned(func(r pgx.Row, d *store.DeviceAuth) error {
	return r.Scan(&d.ID, &d.DeviceCodeHash, &d.UserCode, &d.ClientName, &d.Status, &d.UserID,
		&d.ExpiresAt, &d.LastPolledAt, &d.CreatedAt)
})

func (t *tx) CreateDeviceAuth(ctx context.Context, d store.DeviceAuth) error {
	return t.exec(ctx, "create device authorization "+d.ID, false,
		`INSERT INTO device_auths (id, device_code_hash, user_code, client_name, status, user_id, expires_at, last_polled_at, created_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		d.ID, nonNilBytes(d.DeviceCodeHash), d.UserCode, d.ClientName, d.Status, nullIfEmpty(d.UserID),
		d.ExpiresAt, d.LastPolledAt, d.CreatedAt)
}

// GetDeviceAuthByCodeHash names no part of the hash in its error: it is a credential.
func (t *tx) GetDeviceAuthByCodeHash(ctx context.Context, codeHash []byte) (store.DeviceAuth, error) {
	return get(ctx, t, "get device authorization by device code", scanDeviceAuth,
		`SELECT `+deviceAuthCols+` FROM device_auths WHERE device_code_hash = $1`, nonNilBytes(codeHash))
}

// GetDeviceAuthByUserCode names no user code in its error: until approved, it is one too.
func (t *tx) GetDeviceAuthByUserCode(ctx context.Context, userCode string) (store.DeviceAuth, error) {
	return get(ctx, t, "get device authorization by user code", scanDeviceAuth,
		`SELECT `+deviceAuthCols+` FROM device_auths WHERE user_code = $1`, userCode)
}

func (t *tx) UpdateDeviceAuth(ctx context.Context, d store.DeviceAuth) error {
	return t.exec(ctx, "update device authorization "+d.ID, true,
		`UPDATE device_auths SET client_name = $1, status = $2, user_id = $3, expires_at = $4, last_polled_at = $5 WHERE id = $6`,
		d.ClientName, d.Status, nullIfEmpty(d.UserID), d.ExpiresAt, d.LastPolledAt, d.ID)
}
