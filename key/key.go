// Package key holds WireGuard keys: one 32-byte type with the one strict text
// form (canonical standard base64) and the hex form the UAPI speaks.
//
// It imports nothing of the project's, so every package that handles a key —
// the mesh, NAT traversal, the coordinator and the Node — agrees on how a key
// is generated, parsed and printed.
package key

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
)

// Len is the size of a key in bytes.
const Len = 32

// ErrInvalid reports a key that is not canonical standard base64 of 32 bytes.
var ErrInvalid = errors.New("key: not a WireGuard key (want 32 bytes in standard base64)")

// Key is a Curve25519 private or public key.
type Key [Len]byte

// Generate returns a new random private key, clamped as WireGuard's tools do
// so that its file reads the same in `wg` and friends.
func Generate() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return Key{}, fmt.Errorf("key: generate: %w", err)
	}
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k, nil
}

// Parse reads a key in canonical standard base64 (44 characters with one '=').
// Any other spelling of the same bytes is refused, so that one key has one
// text form and string comparison of keys is sound.
func Parse(s string) (Key, error) {
	if len(s) != base64.StdEncoding.EncodedLen(Len) {
		return Key{}, fmt.Errorf("%w: %d characters", ErrInvalid, len(s))
	}
	var buf [Len + 1]byte // DecodedLen of 44 characters is 33
	n, err := base64.StdEncoding.Strict().Decode(buf[:], []byte(s))
	if err != nil || n != Len {
		return Key{}, ErrInvalid
	}
	return Key(buf[:Len]), nil
}

// ParseHex reads a key in the 64-digit lowercase hex form of the UAPI.
func ParseHex(s string) (Key, error) {
	var k Key
	if len(s) != hex.EncodedLen(Len) {
		return Key{}, fmt.Errorf("key: hex key of %d digits, want %d", len(s), hex.EncodedLen(Len))
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return Key{}, fmt.Errorf("key: hex key: %w", err)
	}
	return k, nil
}

// String returns the key in standard base64.
func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// Hex returns the key in the lowercase hex form of WireGuard's UAPI.
func (k Key) Hex() string { return hex.EncodeToString(k[:]) }

// Public returns the public key of private key k.
func (k Key) Public() Key {
	var pub Key
	priv, err := ecdh.X25519().NewPrivateKey(k[:])
	if err != nil {
		// Unreachable: NewPrivateKey fails only on a length other than 32.
		return pub
	}
	copy(pub[:], priv.PublicKey().Bytes())
	return pub
}

// IsZero reports whether k is all zeros (no key).
func (k Key) IsZero() bool { return k.Equal(Key{}) }

// Equal reports whether k and o are the same key, in constant time.
func (k Key) Equal(o Key) bool { return subtle.ConstantTimeCompare(k[:], o[:]) == 1 }

// Wipe overwrites the key with zeros, for private keys no longer needed.
func (k *Key) Wipe() { clear(k[:]) }

// MarshalText implements encoding.TextMarshaler with the base64 form.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with Parse's strict rule.
func (k *Key) UnmarshalText(b []byte) error {
	p, err := Parse(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}
