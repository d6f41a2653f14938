package turncred

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var secret = []byte("shared-relay-secret")

const devID = "0b6e6c59-3a51-4c8e-9d3c-5d8c1f0a2b7e"

func TestMintVerify(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	exp := now.Add(12 * time.Hour)
	user, pass := Mint(secret, devID, exp)
	require.Equal(t, strconv.FormatInt(exp.Unix(), 10)+":"+devID, user)
	got, err := Verify(secret, user, pass, now)
	require.NoError(t, err)
	require.Equal(t, devID, got)
	// Valid through its expiry second, expired after it.
	_, err = Verify(secret, user, pass, exp)
	assert.NoError(t, err, "at expiry")
	_, err = Verify(secret, user, pass, exp.Add(time.Second))
	assert.ErrorIs(t, err, ErrExpired, "after expiry")
	_, err = Verify([]byte("other secret"), user, pass, now)
	assert.ErrorIs(t, err, ErrInvalid, "other secret")
	forged := []byte(pass)
	forged[0] ^= 1
	_, err = Verify(secret, user, string(forged), now)
	assert.ErrorIs(t, err, ErrInvalid, "forged password")
	// Extending the expiry of a minted credential invalidates it.
	later := strconv.FormatInt(exp.Add(time.Hour).Unix(), 10) + ":" + devID
	_, err = Verify(secret, later, pass, now)
	assert.ErrorIs(t, err, ErrInvalid, "extended expiry")
	// Another device's name with this password.
	other := strconv.FormatInt(exp.Unix(), 10) + ":someone-else"
	_, err = Verify(secret, other, pass, now)
	assert.ErrorIs(t, err, ErrInvalid, "other device")
}

// TestKnownVector pins the scheme to a value computed independently
// (printf '1700000000:dev' | openssl dgst -sha1 -hmac secret -binary | base64).
func TestKnownVector(t *testing.T) {
	assert.Equal(t, "XmI+qxgIGXGp2UISH7mSOlXDeWs=", Password([]byte("secret"), "1700000000:dev"))
}

// TestPionCompatible checks that a TURN server using pion's own TURN REST handler derives the
// same long-term key from our credentials, as coturn would.
func TestPionCompatible(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	user, pass := Mint(secret, devID, exp)
	h := turn.LongTermTURNRESTAuthHandler(string(secret), logging.NewDefaultLoggerFactory().NewLogger("test"))
	id, key, ok := h(&turn.RequestAttributes{Username: user, Realm: "nexodus"})
	require.True(t, ok, "pion's handler refused the credential")
	require.Equal(t, devID, id)
	assert.Equal(t, turn.GenerateAuthKey(user, "nexodus", pass), key, "the long-term key pion derives")
}

func TestParse(t *testing.T) {
	good := map[string]string{
		"1:a":                     "a",
		"1700000000:" + devID:     devID,
		"9223372036854775807:x-y": "x-y",
	}
	for in, want := range good {
		_, id, err := Parse(in)
		if assert.NoError(t, err, "Parse(%q)", in) {
			assert.Equal(t, want, id, "Parse(%q)", in)
		}
	}
	bad := []string{
		"", ":", "1:", ":dev", "dev", "-1:dev", "+1:dev", "01:dev", " 1:dev", "1 :dev",
		"1:de v", "1:dev:x", "1:dev\n", "1:d\xffv", "9223372036854775808:dev", "1e9:dev",
		"1:" + strings.Repeat("a", MaxDeviceIDLength+1),
	}
	for _, in := range bad {
		_, _, err := Parse(in)
		assert.ErrorIs(t, err, ErrMalformed, "Parse(%q)", in)
	}
	exp, _, err := Parse("1700000000:dev")
	require.NoError(t, err)
	assert.True(t, exp.Equal(time.Unix(1700000000, 0)), "expiry %v", exp)
	assert.Equal(t, time.UTC, exp.Location())
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"1700000000:" + devID, "", ":", "1:", "01:x", "-5:x", "1:a:b", "99999999999999999999:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, username string) {
		exp, id, err := Parse(username)
		if err != nil {
			require.ErrorIs(t, err, ErrMalformed, "Parse(%q)", username)
			require.Empty(t, id, "Parse(%q) returned a device id with an error", username)
			require.True(t, exp.IsZero(), "Parse(%q) returned an expiry with an error", username)
			_, verr := Verify(secret, username, "x", time.Unix(0, 0))
			require.ErrorIs(t, verr, ErrMalformed, "Verify(%q)", username)
			return
		}
		// A parsed username round-trips through Mint, and its own credential verifies.
		u, p := Mint(secret, id, exp)
		require.Equal(t, username, u, "Parse then Mint")
		got, err := Verify(secret, u, p, exp)
		require.NoError(t, err, "Verify(Mint(Parse(%q)))", username)
		require.Equal(t, id, got, "Verify(Mint(Parse(%q)))", username)
		require.True(t, len(id) > 0 && len(id) <= MaxDeviceIDLength && !strings.ContainsAny(id, ": "),
			"Parse(%q) accepted device id %q", username, id)
	})
}
