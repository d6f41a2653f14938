// Package sealbox seals a short secret to a Curve25519 public key — a WireGuard key — so that
// only the holder of the matching private key can open it. The coordinator uses it to hand a
// device its token: a registration request carries only the public key, so anybody who sees the
// response without the private key learns nothing.
//
// Format: ephemeral X25519 public key (32 bytes) || AES-256-GCM ciphertext with tag. The AEAD key
// comes from HKDF-SHA256 over the X25519 shared secret, salted with both public keys; each
// message uses a fresh ephemeral key, so a zero nonce is never reused under one key.
package sealbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// KeySize is the size of Curve25519 public and private keys.
const KeySize = 32

const info = "nexodus sealbox v1"

// ErrOpen is returned when a sealed message cannot be opened: wrong key, truncated or tampered.
var ErrOpen = errors.New("sealbox: cannot open message")

// Seal encrypts msg so that only the holder of the private key for recipient can read it.
func Seal(recipient [KeySize]byte, msg []byte) ([]byte, error) {
	pub, err := ecdh.X25519().NewPublicKey(recipient[:])
	if err != nil {
		return nil, fmt.Errorf("sealbox: recipient key: %w", err)
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("sealbox: ephemeral key: %w", err)
	}
	shared, err := eph.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("sealbox: key agreement: %w", err)
	}
	ephPub := eph.PublicKey().Bytes()
	aead, err := newAEAD(shared, ephPub, recipient[:])
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, KeySize+len(msg)+aead.Overhead())
	out = append(out, ephPub...)
	return aead.Seal(out, make([]byte, aead.NonceSize()), msg, ephPub), nil
}

// Open decrypts a message made by Seal for the public key of private.
func Open(private [KeySize]byte, sealed []byte) ([]byte, error) {
	if len(sealed) < KeySize+16 {
		return nil, ErrOpen
	}
	priv, err := ecdh.X25519().NewPrivateKey(private[:])
	if err != nil {
		return nil, fmt.Errorf("sealbox: private key: %w", err)
	}
	ephPub := sealed[:KeySize]
	pub, err := ecdh.X25519().NewPublicKey(ephPub)
	if err != nil {
		return nil, ErrOpen
	}
	shared, err := priv.ECDH(pub)
	if err != nil {
		return nil, ErrOpen
	}
	aead, err := newAEAD(shared, ephPub, priv.PublicKey().Bytes())
	if err != nil {
		return nil, err
	}
	msg, err := aead.Open(nil, make([]byte, aead.NonceSize()), sealed[KeySize:], ephPub)
	if err != nil {
		return nil, ErrOpen
	}
	return msg, nil
}

func newAEAD(shared, ephPub, recipient []byte) (cipher.AEAD, error) {
	salt := make([]byte, 0, 2*KeySize)
	salt = append(append(salt, ephPub...), recipient...)
	key, err := hkdf.Key(sha256.New, shared, salt, info, 32)
	if err != nil {
		return nil, fmt.Errorf("sealbox: derive key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("sealbox: cipher: %w", err)
	}
	return cipher.NewGCM(block)
}
