package coordinator

// Sealing organizations' relay secrets at rest. The secret cannot be hashed like the
// coordinator's other secrets: minting a TURN REST credential is an HMAC keyed with the secret
// itself, so the coordinator must be able to read it back. It is sealed with AES-256-GCM under
// a key derived from [Config.SealKey], bound to the organization's ID (a sealed secret copied
// to another organization's row does not open). Without a SealKey it is stored as given, and
// then only access to the database (file permissions, disk encryption, backups) protects it,
// as the relays' own configuration files protect their copy; the coordinator logs a warning
// each time it stores one that way.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// ErrSealed is returned (wrapped) when a stored organization relay secret cannot be opened: it
// was sealed and Config.SealKey is missing or another key.
var ErrSealed = errors.New("coordinator: cannot open sealed relay secret")

// Stored secret formats: one version byte, then the payload.
const (
	secretPlain  = 0x00 // the secret as given
	secretSealed = 0x01 // 12-byte nonce || AES-256-GCM ciphertext with tag
)

const sealInfo = "nexodus coordinator: organization relay secret v1"

// newSealer derives the AEAD that seals organization relay secrets from Config.SealKey; nil
// without a key.
func newSealer(key []byte) (cipher.AEAD, error) {
	if len(key) == 0 {
		return nil, nil
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("coordinator: SealKey must be 32 bytes, not %d", len(key))
	}
	// A derived key keeps SealKey usable for other purposes later without key reuse.
	k, err := hkdf.Key(sha256.New, key, nil, sealInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("coordinator: derive seal key: %w", err)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("coordinator: seal key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("coordinator: seal key: %w", err)
	}
	return aead, nil
}

// sealSecret returns the stored form of an organization's relay secret.
func (s *Server) sealSecret(orgID string, secret []byte) []byte {
	if s.sealer == nil {
		return append([]byte{secretPlain}, secret...)
	}
	nonce := make([]byte, s.sealer.NonceSize())
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails
	out := append([]byte{secretSealed}, nonce...)
	return s.sealer.Seal(out, nonce, secret, []byte(orgID))
}

// openSecret reverses sealSecret.
func (s *Server) openSecret(orgID string, stored []byte) ([]byte, error) {
	if len(stored) == 0 {
		return nil, fmt.Errorf("%w: organization %s: empty", ErrSealed, orgID)
	}
	switch stored[0] {
	case secretPlain:
		return stored[1:], nil
	case secretSealed:
		if s.sealer == nil {
			return nil, fmt.Errorf("%w: organization %s: Config.SealKey is not set", ErrSealed, orgID)
		}
		n := s.sealer.NonceSize()
		if len(stored) < 1+n+s.sealer.Overhead() {
			return nil, fmt.Errorf("%w: organization %s: truncated", ErrSealed, orgID)
		}
		secret, err := s.sealer.Open(nil, stored[1:1+n], stored[1+n:], []byte(orgID))
		if err != nil {
			return nil, fmt.Errorf("%w: organization %s: wrong SealKey or tampered row", ErrSealed, orgID)
		}
		return secret, nil
	default:
		return nil, fmt.Errorf("%w: organization %s: unknown format %d", ErrSealed, orgID, stored[0])
	}
}
