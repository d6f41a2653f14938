package coordinator

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
)

// filesHolding lists which of the SQLite database's files (the file, -wal, -shm) hold secret.
func filesHolding(t *testing.T, path, secret string) []string {
	t.Helper()
	var where []string
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		require.NoError(t, err)
		if bytes.Contains(b, []byte(secret)) {
			where = append(where, filepath.Base(p))
		}
	}
	return where
}

// storedSecret is the stored form of the organization's relay secret.
func (e *env) storedSecret(orgID string) []byte {
	e.t.Helper()
	ctx := context.Background()
	var r store.OrgRelays
	require.NoError(e.t, e.store.View(ctx, func(tx store.Tx) (err error) {
		r, err = tx.GetOrgRelays(ctx, orgID)
		return err
	}))
	return r.Secret
}

// setStoredSecret overwrites the stored form of the organization's relay secret.
func (e *env) setStoredSecret(orgID string, stored []byte) {
	e.t.Helper()
	ctx := context.Background()
	require.NoError(e.t, e.store.Tx(ctx, func(tx store.Tx) error {
		r, err := tx.GetOrgRelays(ctx, orgID)
		if err != nil {
			return err
		}
		r.Secret = stored
		return tx.SetOrgRelays(ctx, r)
	}))
}

// TestResealScrubsPlaintext: relay secrets stored before the coordinator had a SealKey are
// sealed at the first start with one, and then no file of the SQLite database (the file, its
// WAL, its shared memory) holds them, while the coordinator runs.
func TestResealScrubsPlaintext(t *testing.T) {
	e := newEnv(t, withRelay)
	alice := e.newUser("alice")
	acme := e.newOrg(alice, "acme", "")
	d := e.register(alice.Token, acme.ID, "d", newKey(t), 201)
	e.call("PUT", orgRelaysPath(acme.ID), alice.Token, orgRelaysReq(), 200, nil)
	second := "second-organization-relay-secret-7f3a"
	e.call("PUT", orgRelaysPath(alice.PersonalOrg), alice.Token, relaysWithSecret(second), 200, nil)
	require.NotEmpty(t, filesHolding(t, e.path, orgSecret), "the secret is stored in no file without a SealKey: the test proves nothing")
	require.EqualValues(t, secretPlain, e.storedSecret(acme.ID)[0])

	e.cfg.SealKey = sealKey
	e.restart()
	for _, s := range []string{orgSecret, second} {
		assert.Empty(t, filesHolding(t, e.path, s), "database files holding a relay secret after the restart with a SealKey")
	}
	for _, org := range []string{acme.ID, alice.PersonalOrg} {
		assert.EqualValues(t, secretSealed, e.storedSecret(org)[0], "stored form of %s", org)
	}
	assert.False(t, e.coord.scrubPending.Load(), "scrub pending after a successful start")
	verifies(t, []byte(orgSecret), e.relayFor(d), d.ID, "sealed at start")

	// A second start finds nothing to do and leaves the sealed rows as they are.
	before := e.storedSecret(acme.ID)
	e.restart()
	assert.Equal(t, before, e.storedSecret(acme.ID), "stored form after a second start")
	verifies(t, []byte(orgSecret), e.relayFor(d), d.ID, "after a second start")
}

// relaysWithSecret is orgRelaysReq with another secret.
func relaysWithSecret(secret string) api.SetOrgRelaysRequest {
	r := orgRelaysReq()
	r.Secret = secret
	return r
}

// TestResealUpgradesFirstFormat: a secret in the first sealed format (no key ID) is sealed
// again in the current one at start.
func TestResealUpgradesFirstFormat(t *testing.T) {
	e := newEnv(t, withRelay, withSealKey)
	alice := e.newUser("alice")
	d := e.register(alice.Token, alice.PersonalOrg, "d", newKey(t), 201)
	e.call("PUT", orgRelaysPath(alice.PersonalOrg), alice.Token, orgRelaysReq(), 200, nil)
	sl, err := newSealer(sealKey)
	require.NoError(t, err)
	nonce := make([]byte, gcmNonce)
	_, _ = rand.Read(nonce)
	v1 := sl.aead.Seal(append([]byte{secretSealedV1}, nonce...), nonce, []byte(orgSecret), []byte(alice.PersonalOrg))
	e.setStoredSecret(alice.PersonalOrg, v1)
	verifies(t, []byte(orgSecret), e.relayFor(d), d.ID, "first format read")

	e.restart()
	assert.EqualValues(t, secretSealed, e.storedSecret(alice.PersonalOrg)[0], "stored form after the restart")
	verifies(t, []byte(orgSecret), e.relayFor(d), d.ID, "after the upgrade")
}

// TestResealLeavesWhatItCannotOpen: started with another SealKey or none, the coordinator
// starts, leaves sealed rows untouched (the right key opens them later), and serves those
// organizations' relays with a clear error.
func TestResealLeavesWhatItCannotOpen(t *testing.T) {
	e := newEnv(t, withRelay, withSealKey)
	alice := e.newUser("alice")
	d := e.register(alice.Token, alice.PersonalOrg, "d", newKey(t), 201)
	e.call("PUT", orgRelaysPath(alice.PersonalOrg), alice.Token, orgRelaysReq(), 200, nil)
	stored := e.storedSecret(alice.PersonalOrg)

	for name, k := range map[string][]byte{"another key": bytes.Repeat([]byte{1}, 32), "no key": nil} {
		e.cfg.SealKey = k
		e.restart()
		assert.Equal(t, stored, e.storedSecret(alice.PersonalOrg), "%s: stored form", name)
		e.fails(500, "", "GET", relayPath(d.ID), d.Token, nil)
	}
	e.cfg.SealKey = sealKey
	e.restart()
	verifies(t, []byte(orgSecret), e.relayFor(d), d.ID, "the right key again")
}

// TestOpenSecretErrors: every way a stored secret fails to open is ErrSealed with a message
// that says which, never garbage.
func TestOpenSecretErrors(t *testing.T) {
	mine, err := newSealer(sealKey)
	require.NoError(t, err)
	other, err := newSealer(bytes.Repeat([]byte{7}, 32))
	require.NoError(t, err)
	require.NotEqual(t, mine.keyID(), other.keyID())
	sealed := (&Server{sealer: other}).sealSecret("org-1", []byte(orgSecret))
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	renamed := bytes.Clone(sealed)
	renamed[1] ^= 1 // another key ID: does not open under the real one either
	v1 := append([]byte{secretSealedV1}, make([]byte, gcmNonce+gcmTag+4)...)

	for _, tc := range []struct {
		name   string
		s      *Server
		stored []byte
		want   []string
	}{
		{"another key", &Server{sealer: mine}, sealed, []string{"sealed with seal key " + other.keyID(), "not this coordinator's (" + mine.keyID() + ")"}},
		{"no key", &Server{}, sealed, []string{"sealed with seal key " + other.keyID(), "Config.SealKey is not set"}},
		{"tampered", &Server{sealer: other}, tampered, []string{"damaged"}},
		{"another organization", &Server{sealer: other}, sealed, nil}, // opened as org-2 below
		{"first format under another key", &Server{sealer: mine}, v1, []string{"another key, or the row is damaged"}},
		{"first format without a key", &Server{}, v1, []string{"Config.SealKey is not set"}},
		{"plain, not printable", &Server{}, []byte{secretPlain, 'a', 0x01}, []string{"damaged"}},
		{"plain, empty", &Server{}, []byte{secretPlain}, []string{"damaged"}},
		{"truncated", &Server{sealer: other}, sealed[:1+sealIDLen+3], []string{"truncated"}},
		{"unknown format", &Server{sealer: mine}, []byte{'s', 'e', 'c'}, []string{"unknown format"}},
		{"empty", &Server{sealer: mine}, nil, []string{"empty"}},
	} {
		org := "org-1"
		if tc.name == "another organization" {
			org = "org-2"
		}
		got, err := tc.s.openSecret(org, tc.stored)
		require.ErrorIs(t, err, ErrSealed, tc.name)
		assert.Nil(t, got, tc.name)
		assert.Contains(t, err.Error(), "organization "+org, tc.name)
		for _, w := range tc.want {
			assert.Contains(t, err.Error(), w, tc.name)
		}
	}
	_, err = (&Server{sealer: other}).openSecret("org-1", renamed)
	require.ErrorIs(t, err, ErrSealed, "another key ID")
	got, err := (&Server{sealer: other}).openSecret("org-1", sealed)
	require.NoError(t, err)
	assert.Equal(t, orgSecret, string(got))
}

// compactFailing is a store whose Compact fails as often as told first.
type compactFailing struct {
	*sqlite.Store
	failures atomic.Int32
	calls    atomic.Int32
}

func (s *compactFailing) Compact(ctx context.Context) error {
	s.calls.Add(1)
	if s.failures.Add(-1) >= 0 {
		return errors.New("compact: database busy")
	}
	return s.Store.Compact(ctx)
}

// TestScrubRetriedBySweeper: when compacting after the re-seal fails, the coordinator still
// starts, and its sweeper compacts until it succeeds.
func TestScrubRetriedBySweeper(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	e.call("PUT", orgRelaysPath(alice.PersonalOrg), alice.Token, orgRelaysReq(), 200, nil)
	e.stop()

	ctx := context.Background()
	st, err := sqlite.Open(ctx, e.path)
	require.NoError(t, err)
	defer func() { assert.NoError(t, st.Close()) }()
	fs := &compactFailing{Store: st}
	fs.failures.Store(1)
	c, err := New(ctx, Config{Store: fs, SealKey: sealKey, Logger: testLogger()})
	require.NoError(t, err, "New with a failing Compact")
	defer func() { assert.NoError(t, c.Close()) }()
	assert.EqualValues(t, 1, fs.calls.Load(), "Compact calls at start")
	assert.True(t, c.scrubPending.Load(), "scrub pending after a failed Compact")

	c.sweep(ctx)
	assert.EqualValues(t, 2, fs.calls.Load(), "Compact calls after a sweep")
	assert.False(t, c.scrubPending.Load(), "scrub pending after the sweep's Compact")
	assert.Empty(t, filesHolding(t, e.path, orgSecret), "database files holding the relay secret")
	c.sweep(ctx)
	assert.EqualValues(t, 2, fs.calls.Load(), "Compact calls after a sweep with nothing pending")
}
