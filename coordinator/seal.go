package coordinator

// Sealing organizations' relay secrets at rest, and re-sealing at start what was stored in an
// older form. The secret cannot be hashed like the coordinator's other secrets: minting a TURN
// REST credential is an HMAC keyed with the secret itself, so the coordinator must be able to
// read it back. It is sealed with AES-256-GCM under a key derived from [Config.SealKey], bound
// to the organization's ID (a sealed secret copied to another organization's row does not
// open) and naming the seal key by a short ID (so that a coordinator started with another key
// says so, rather than "cannot decrypt"). Without a SealKey it is stored as given, and then
// only access to the database protects it; the coordinator logs a warning each time it stores
// one that way.
//
// At start with a SealKey, every secret stored unsealed (before the coordinator had a key) or
// in the first sealed format is sealed again, and the store is compacted
// ([store.Store.Compact]) so that the old plaintext no longer sits in the database's free
// pages or write-ahead log: for SQLite a VACUUM and a truncating checkpoint; PostgreSQL's
// files are the database operator's to scrub.

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// ErrSealed is returned (wrapped) when a stored organization relay secret cannot be opened:
// it was sealed and Config.SealKey is missing or another key, or the stored form is damaged.
// The message says which.
var ErrSealed = errors.New("coordinator: cannot open sealed relay secret")

// Stored secret formats: one version byte, then the payload. The first byte alone tells them
// apart: a relay secret is printable ASCII (validRelaySecret), so no secret as given starts
// with a byte below 0x21, and a plain secret must be printable ASCII after its 0x00.
const (
	secretPlain    = 0x00 // the secret as given (stored without a SealKey)
	secretSealedV1 = 0x01 // 12-byte nonce || AES-256-GCM ciphertext with tag; AAD the organization ID. Read, re-sealed at start.
	secretSealed   = 0x02 // 8-byte key ID || 12-byte nonce || AES-256-GCM ciphertext with tag; AAD the version byte, key ID and organization ID
)

const (
	sealInfo   = "nexodus coordinator: organization relay secret v1"
	sealIDInfo = "nexodus coordinator: seal key id v1"
	sealIDLen  = 8
	gcmNonce   = 12 // cipher.NewGCM's nonce size
	gcmTag     = 16 // and its tag size
)

// sealer seals organization relay secrets under one SealKey.
type sealer struct {
	aead cipher.AEAD
	id   [sealIDLen]byte // names the key in what it seals; derived, so it reveals nothing of it
}

// newSealer derives the AEAD that seals organization relay secrets from Config.SealKey, and the
// key's ID; nil without a key.
func newSealer(key []byte) (*sealer, error) {
	if len(key) == 0 {
		return nil, nil
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("coordinator: SealKey must be 32 bytes, not %d", len(key))
	}
	// Derived keys keep SealKey usable for other purposes later without key reuse.
	k, err := hkdf.Key(sha256.New, key, nil, sealInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("coordinator: derive seal key: %w", err)
	}
	id, err := hkdf.Key(sha256.New, key, nil, sealIDInfo, sealIDLen)
	if err != nil {
		return nil, fmt.Errorf("coordinator: derive seal key ID: %w", err)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("coordinator: seal key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("coordinator: seal key: %w", err)
	}
	sl := &sealer{aead: aead}
	copy(sl.id[:], id)
	return sl, nil
}

// keyID is the seal key's ID as logs and errors show it.
func (sl *sealer) keyID() string { return hex.EncodeToString(sl.id[:]) }

// sealAAD is what a sealed secret is bound to besides its key.
func sealAAD(id []byte, orgID string) []byte {
	return append(append([]byte{secretSealed}, id...), orgID...)
}

// sealSecret returns the stored form of an organization's relay secret.
func (s *Server) sealSecret(orgID string, secret []byte) []byte {
	if s.sealer == nil {
		return append([]byte{secretPlain}, secret...)
	}
	a := s.sealer.aead
	nonce := make([]byte, gcmNonce)
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails
	out := make([]byte, 0, 1+sealIDLen+len(nonce)+len(secret)+a.Overhead())
	out = append(append(append(out, secretSealed), s.sealer.id[:]...), nonce...)
	return a.Seal(out, nonce, secret, sealAAD(s.sealer.id[:], orgID))
}

// openSecret reverses sealSecret, and reads the older forms too.
func (s *Server) openSecret(orgID string, stored []byte) ([]byte, error) {
	if len(stored) == 0 {
		return nil, fmt.Errorf("%w: organization %s: the stored secret is empty", ErrSealed, orgID)
	}
	switch stored[0] {
	case secretPlain:
		secret := stored[1:]
		if len(secret) == 0 || !printable(secret) {
			return nil, fmt.Errorf("%w: organization %s: the unsealed secret is damaged (not printable ASCII): have an owner set the organization's relays again", ErrSealed, orgID)
		}
		return secret, nil
	case secretSealed:
		if len(stored) < 1+sealIDLen+gcmNonce+gcmTag {
			return nil, fmt.Errorf("%w: organization %s: the sealed secret is truncated: have an owner set the organization's relays again", ErrSealed, orgID)
		}
		id := stored[1 : 1+sealIDLen]
		if s.sealer == nil {
			return nil, fmt.Errorf("%w: organization %s: the secret is sealed with seal key %x and Config.SealKey is not set: start the coordinator with that key", ErrSealed, orgID, id)
		}
		if string(id) != string(s.sealer.id[:]) {
			return nil, fmt.Errorf("%w: organization %s: the secret is sealed with seal key %x, not this coordinator's (%s): start the coordinator with that key, or have an owner set the organization's relays again",
				ErrSealed, orgID, id, s.sealer.keyID())
		}
		rest := stored[1+sealIDLen:]
		secret, err := s.sealer.aead.Open(nil, rest[:gcmNonce], rest[gcmNonce:], sealAAD(id, orgID))
		if err != nil {
			return nil, fmt.Errorf("%w: organization %s: the sealed secret does not open under its own seal key %x: the row is damaged or belongs to another organization", ErrSealed, orgID, id)
		}
		return secret, nil
	case secretSealedV1:
		if s.sealer == nil {
			return nil, fmt.Errorf("%w: organization %s: the secret is sealed and Config.SealKey is not set: start the coordinator with the key it was sealed with", ErrSealed, orgID)
		}
		a, n := s.sealer.aead, gcmNonce
		if len(stored) < 1+n+gcmTag {
			return nil, fmt.Errorf("%w: organization %s: the sealed secret is truncated: have an owner set the organization's relays again", ErrSealed, orgID)
		}
		secret, err := a.Open(nil, stored[1:1+n], stored[1+n:], []byte(orgID))
		if err != nil {
			// The first format does not name its key: either could be the cause.
			return nil, fmt.Errorf("%w: organization %s: the secret does not open under this coordinator's seal key (%s): it was sealed with another key, or the row is damaged",
				ErrSealed, orgID, s.sealer.keyID())
		}
		return secret, nil
	default:
		return nil, fmt.Errorf("%w: organization %s: the stored secret has an unknown format (%#02x): written by a newer coordinator, or damaged", ErrSealed, orgID, stored[0])
	}
}

// printable reports whether b is printable ASCII without spaces, what every relay secret is.
func printable(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// maxUnreadableLogged is how many unreadable secrets a start logs one by one.
const maxUnreadableLogged = 10

// resealed is what a start-time re-seal found.
type resealed struct {
	sealed     int      // unsealed secrets now sealed
	upgraded   int      // secrets of the first sealed format sealed again in the current one
	unsealed   int      // unsealed secrets left so (no SealKey)
	unreadable []string // why each secret that does not open does not
}

// resealSecrets brings every stored organization relay secret to the current sealed form
// (nothing to do without a SealKey), in one transaction, and when it sealed any unsealed
// secret, compacts the store so the plaintext leaves the database files. Secrets it cannot
// open are left as they are and logged: they fail with a clear ErrSealed when used, and an
// owner setting the relays again heals them (changing SealKey is allowed). A failed compaction
// is logged and retried by the sweeper.
func (s *Server) resealSecrets(ctx context.Context) error {
	r, err := inTx(ctx, s.store, func(tx store.Tx) (resealed, error) {
		var r resealed // afresh on every attempt: a PostgreSQL Tx may run this again
		rows, err := tx.ListOrgRelays(ctx)
		if err != nil {
			return r, err
		}
		for _, row := range rows {
			secret, err := s.openSecret(row.OrganizationID, row.Secret)
			switch {
			case err != nil:
				r.unreadable = append(r.unreadable, err.Error())
				continue
			case s.sealer == nil: // only an unsealed secret opens without a key
				r.unsealed++
				continue
			case row.Secret[0] == secretSealed: // current
				continue
			}
			plain := row.Secret[0] == secretPlain
			row.Secret = s.sealSecret(row.OrganizationID, secret)
			if err := tx.SetOrgRelays(ctx, row); err != nil {
				return r, err
			}
			if plain {
				r.sealed++
			} else {
				r.upgraded++
			}
		}
		return r, nil
	})
	if err != nil {
		return fmt.Errorf("coordinator: re-seal organization relay secrets: %w", err)
	}
	// A wrong key makes every row unreadable: a few examples and the count say it all.
	for i, why := range r.unreadable {
		if i == maxUnreadableLogged {
			s.log.Error("more organization relay secrets unreadable", "count", len(r.unreadable)-i)
			break
		}
		s.log.Error("organization relay secret unreadable: its devices get no TURN credentials from it", "err", why)
	}
	if r.unsealed > 0 {
		s.log.Warn("organization relay secrets stored unsealed: set the coordinator's SealKey to seal them", "count", r.unsealed)
	}
	if r.upgraded > 0 {
		s.log.Info("organization relay secrets sealed again in the current format", "count", r.upgraded, "key_id", s.sealer.keyID())
	}
	if r.sealed > 0 {
		s.log.Info("unsealed organization relay secrets sealed", "count", r.sealed, "key_id", s.sealer.keyID())
		s.scrubPending.Store(true)
		s.scrub(ctx)
	}
	return nil
}

// scrub compacts the store after unsealed secrets were sealed, so that their plaintext leaves
// the database files; on failure it stays pending, and the sweeper tries again.
func (s *Server) scrub(ctx context.Context) {
	if err := s.store.Compact(ctx); err != nil {
		if ctx.Err() == nil {
			s.log.Error("scrubbing old relay secrets from the database files failed; retrying at the next sweep", "err", err)
		}
		return
	}
	s.scrubPending.Store(false)
	s.log.Info("old unsealed relay secrets scrubbed from the database files")
}
