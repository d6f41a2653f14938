package sqlite

// Temporary stubs of the store methods added for identity, sessions, signals and presence,
// so that the tree builds while the engine gains them. Each returns errUnimplemented.

import (
	"context"
	"errors"
	"time"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

var errUnimplemented = errors.New("sqlite store: not implemented yet")

func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error { return s.Tx(ctx, fn) }
func (s *Store) Watch(fn func(store.Change)) func()                      { return func() {} }
func (s *Store) TryLock(ctx context.Context, name string) (func(), bool, error) {
	return func() {}, true, nil
}

func (t *tx) DeleteUser(ctx context.Context, id string) error { return errUnimplemented }
func (t *tx) ListTokensForUser(ctx context.Context, userID string) ([]store.Token, error) {
	return nil, errUnimplemented
}
func (t *tx) DeleteToken(ctx context.Context, id string) error { return errUnimplemented }
func (t *tx) CreateIdentity(ctx context.Context, id store.Identity) error {
	return errUnimplemented
}
func (t *tx) GetIdentity(ctx context.Context, issuer, subject string) (store.Identity, error) {
	return store.Identity{}, errUnimplemented
}
func (t *tx) ListIdentitiesForUser(ctx context.Context, userID string) ([]store.Identity, error) {
	return nil, errUnimplemented
}
func (t *tx) CreateSession(ctx context.Context, s store.Session) error { return errUnimplemented }
func (t *tx) GetSession(ctx context.Context, id string) (store.Session, error) {
	return store.Session{}, errUnimplemented
}
func (t *tx) DeleteSession(ctx context.Context, id string) error { return errUnimplemented }
func (t *tx) CreateLoginState(ctx context.Context, l store.LoginState) error {
	return errUnimplemented
}
func (t *tx) TakeLoginState(ctx context.Context, stateHash []byte) (store.LoginState, error) {
	return store.LoginState{}, errUnimplemented
}
func (t *tx) CreateDeviceAuth(ctx context.Context, d store.DeviceAuth) error {
	return errUnimplemented
}
func (t *tx) GetDeviceAuthByCodeHash(ctx context.Context, codeHash []byte) (store.DeviceAuth, error) {
	return store.DeviceAuth{}, errUnimplemented
}
func (t *tx) GetDeviceAuthByUserCode(ctx context.Context, userCode string) (store.DeviceAuth, error) {
	return store.DeviceAuth{}, errUnimplemented
}
func (t *tx) UpdateDeviceAuth(ctx context.Context, d store.DeviceAuth) error {
	return errUnimplemented
}
func (t *tx) PruneAuth(ctx context.Context, before time.Time) (int64, error) {
	return 0, errUnimplemented
}
func (t *tx) SetMemberRole(ctx context.Context, orgID, userID, role string) error {
	return errUnimplemented
}
func (t *tx) AppendSignal(ctx context.Context, e store.Event) (int64, error) {
	return t.AppendEvent(ctx, e)
}
func (t *tx) PruneSignals(ctx context.Context, before time.Time) (int64, error) {
	return 0, nil
}
func (t *tx) PutPresence(ctx context.Context, p store.Presence) error { return errUnimplemented }
func (t *tx) DeletePresence(ctx context.Context, deviceID, replicaID string) error {
	return errUnimplemented
}
func (t *tx) OnlineDevices(ctx context.Context, orgID string, now time.Time) ([]string, error) {
	return nil, errUnimplemented
}
func (t *tx) PrunePresence(ctx context.Context, before time.Time) (int64, error) {
	return 0, errUnimplemented
}
