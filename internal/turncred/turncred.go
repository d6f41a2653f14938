// Package turncred implements the TURN REST credential scheme (draft-uberti-behave-turn-rest,
// coturn's "use-auth-secret"): a coordinator and its relays share a secret; the coordinator
// mints time-limited credentials for a device without talking to the relay, and the relay checks
// them without a database.
//
// The username is "<expiry>:<device-id>", where expiry is the Unix time in seconds after which
// the credential is no longer accepted, and the password is the standard base64 encoding of
// HMAC-SHA1(secret, username). Any TURN server that implements the scheme (coturn with
// use-auth-secret and static-auth-secret) accepts these credentials.
package turncred

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // HMAC-SHA1 is what the TURN REST scheme specifies.
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// MaxDeviceIDLength bounds the device ID part of a username. TURN usernames are limited to
// 513 bytes; device IDs are far shorter.
const MaxDeviceIDLength = 128

// Errors returned by [Parse] and [Verify]. Callers branch on them with errors.Is.
var (
	// ErrMalformed means the username is not "<unix-expiry>:<device-id>".
	ErrMalformed = errors.New("turncred: malformed username")
	// ErrExpired means the credential's expiry has passed.
	ErrExpired = errors.New("turncred: credential expired")
	// ErrInvalid means the password does not match the username under the secret (forged, or
	// minted with another secret).
	ErrInvalid = errors.New("turncred: invalid password")
)

// Mint returns a credential for deviceID valid until expiry (truncated to the second).
func Mint(secret []byte, deviceID string, expiry time.Time) (username, password string) {
	username = strconv.FormatInt(expiry.Unix(), 10) + ":" + deviceID
	return username, Password(secret, username)
}

// Password returns the password belonging to username under secret: base64(HMAC-SHA1(secret,
// username)). A TURN server uses it to derive the long-term key of a request's username.
func Password(secret []byte, username string) string {
	mac := hmac.New(sha1.New, secret)
	_, _ = mac.Write([]byte(username)) // hash.Hash.Write never fails
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Parse splits a username into its expiry and device ID. The expiry is decimal digits only
// (no sign), the device ID is 1 to [MaxDeviceIDLength] printable ASCII characters other than
// ':' and space. It returns an error wrapping [ErrMalformed] otherwise.
func Parse(username string) (expiry time.Time, deviceID string, err error) {
	i := 0
	for i < len(username) && username[i] != ':' {
		if username[i] < '0' || username[i] > '9' {
			return time.Time{}, "", fmt.Errorf("%w: expiry is not a decimal number", ErrMalformed)
		}
		i++
	}
	if i == 0 || i == len(username) {
		return time.Time{}, "", fmt.Errorf("%w: want <unix-expiry>:<device-id>", ErrMalformed)
	}
	if i > 1 && username[0] == '0' {
		return time.Time{}, "", fmt.Errorf("%w: expiry has a leading zero", ErrMalformed)
	}
	secs, err := strconv.ParseInt(username[:i], 10, 64)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("%w: expiry out of range", ErrMalformed)
	}
	deviceID = username[i+1:]
	if deviceID == "" || len(deviceID) > MaxDeviceIDLength {
		return time.Time{}, "", fmt.Errorf("%w: device id must be 1 to %d bytes", ErrMalformed, MaxDeviceIDLength)
	}
	for j := 0; j < len(deviceID); j++ {
		if c := deviceID[j]; c <= ' ' || c > '~' || c == ':' {
			return time.Time{}, "", fmt.Errorf("%w: device id has a character other than printable ASCII", ErrMalformed)
		}
	}
	return time.Unix(secs, 0).UTC(), deviceID, nil
}

// Check is the half of [Verify] a TURN server runs: TURN's long-term credential mechanism never
// sends the password, it proves knowledge of it with each request's MESSAGE-INTEGRITY, which
// the server checks with a key derived from the password it computes here. Check parses the
// username, refuses it once its expiry has passed (a credential is valid up to and including
// its expiry second) and returns the device ID and the password the username must have. Errors
// wrap [ErrMalformed] or [ErrExpired].
func Check(secret []byte, username string, now time.Time) (deviceID, password string, err error) {
	expiry, deviceID, err := Parse(username)
	if err != nil {
		return "", "", err
	}
	if now.Unix() > expiry.Unix() {
		return "", "", fmt.Errorf("%w at %s", ErrExpired, expiry.Format(time.RFC3339))
	}
	return deviceID, Password(secret, username), nil
}

// Verify checks a credential at time now: the username must parse, its expiry must not have
// passed, and the password must match in constant time. It returns the credential's device ID,
// or an error wrapping [ErrMalformed], [ErrExpired] or [ErrInvalid].
func Verify(secret []byte, username, password string, now time.Time) (deviceID string, err error) {
	deviceID, want, err := Check(secret, username, now)
	if err != nil {
		return "", err
	}
	if subtle.ConstantTimeCompare([]byte(password), []byte(want)) != 1 {
		return "", ErrInvalid
	}
	return deviceID, nil
}
