package coordinator

// Identifiers and secrets the coordinator makes: UUIDs for every record, random secrets for
// every credential, and the hashes it stores instead of them.

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
)

// newID returns a random UUID (version 4) in its canonical lowercase form.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics on a broken system)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// validID reports whether s is a canonical lowercase UUID, the only ID form the coordinator makes.
func validID(s string) bool { return api.IsID(s) }

func checkID(what, s string) error {
	if !validID(s) {
		return errorf(ErrBadRequest, "invalid %s: want a lowercase UUID", what)
	}
	return nil
}

// newSecret returns 32 random bytes as unpadded base64url (43 characters).
func newSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// parseCredential checks the description and lifetime ("expires_in_seconds", 0 for none) of a
// new credential.
func parseCredential(desc string, expiresIn int64) (time.Duration, error) {
	if err := validDescription(desc); err != nil {
		return 0, err
	}
	return parseExpiresIn(expiresIn, 0)
}

// expiry is when something made at now with lifetime ttl expires; nil for no expiry (ttl 0).
func expiry(now time.Time, ttl time.Duration) *time.Time {
	if ttl <= 0 {
		return nil
	}
	exp := now.Add(ttl)
	return &exp
}
