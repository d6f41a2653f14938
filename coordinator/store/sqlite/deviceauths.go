package sqlite

// The device_auths table: OAuth 2.0 device authorization grants (RFC 8628) in progress.

import (
	"context"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

const deviceAuthCols = `id, device_code_hash, user_code, client_name, status, COALESCE(user_id, ''), expires_at, last_polled_at, created_at`

var scanDeviceAuth = scanned(func(sc scanner, d *store.DeviceAuth) error {
	return sc.Scan(&d.ID, &d.DeviceCodeHash, &d.UserCode, &d.ClientName, &d.Status, &d.UserID,
		timeCol{&d.ExpiresAt}, timeCol{&d.LastPolledAt}, timeCol{&d.CreatedAt})
})

func (t *tx) CreateDeviceAuth(ctx context.Context, d store.DeviceAuth) error {
	return t.exec(ctx, "create device authorization "+d.ID, false,
		`INSERT INTO device_auths (id, device_code_hash, user_code, client_name, status, user_id, expires_at, last_polled_at, created_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, nonNilBytes(d.DeviceCodeHash), d.UserCode, d.ClientName, d.Status, nullIfEmpty(d.UserID),
		fmtTime(d.ExpiresAt), fmtTime(d.LastPolledAt), fmtTime(d.CreatedAt))
}

// GetDeviceAuthByCodeHash names no part of the hash in its error: it is a credential.
func (t *tx) GetDeviceAuthByCodeHash(ctx context.Context, codeHash []byte) (store.DeviceAuth, error) {
	return get(ctx, t, "get device authorization by device code", scanDeviceAuth,
		`SELECT `+deviceAuthCols+` FROM device_auths WHERE device_code_hash = ?`, nonNilBytes(codeHash))
}

// GetDeviceAuthByUserCode names no user code in its error: until approved, it is one too.
func (t *tx) GetDeviceAuthByUserCode(ctx context.Context, userCode string) (store.DeviceAuth, error) {
	return get(ctx, t, "get device authorization by user code", scanDeviceAuth,
		`SELECT `+deviceAuthCols+` FROM device_auths WHERE user_code = ?`, userCode)
}

func (t *tx) UpdateDeviceAuth(ctx context.Context, d store.DeviceAuth) error {
	return t.exec(ctx, "update device authorization "+d.ID, true,
		`UPDATE device_auths SET client_name = ?, status = ?, user_id = ?, expires_at = ?, last_polled_at = ? WHERE id = ?`,
		d.ClientName, d.Status, nullIfEmpty(d.UserID), fmtTime(d.ExpiresAt), fmtTime(d.LastPolledAt), d.ID)
}
