package key_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/curve25519"

	"github.com/nexodus-sdk/nexodus/key"
)

func TestGenerateIsClampedAndRandom(t *testing.T) {
	a, err := key.Generate()
	require.NoError(t, err)
	b, err := key.Generate()
	require.NoError(t, err)
	assert.False(t, a.Equal(b))
	assert.Zero(t, a[0]&7)
	assert.Equal(t, byte(64), a[31]&192)
	assert.False(t, a.IsZero())
}

func TestPublicMatchesCurve25519(t *testing.T) {
	priv, err := key.Generate()
	require.NoError(t, err)
	want, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	require.NoError(t, err)
	pub := priv.Public()
	assert.Equal(t, want, pub[:])
}

func TestParseRoundTrip(t *testing.T) {
	priv, err := key.Generate()
	require.NoError(t, err)
	got, err := key.Parse(priv.String())
	require.NoError(t, err)
	assert.Equal(t, priv, got)
	hx, err := key.ParseHex(priv.Hex())
	require.NoError(t, err)
	assert.Equal(t, priv, hx)
}

func TestParseRefusesNonCanonical(t *testing.T) {
	var k key.Key
	k[31] = 1
	good := k.String()
	// The last base64 digit of 32 bytes carries two unused bits; setting them
	// spells the same bytes differently.
	alt := good[:42] + "F="
	for name, s := range map[string]string{
		"empty":       "",
		"short":       good[:43],
		"unpadded":    strings.TrimRight(good, "="),
		"url":         base64.URLEncoding.EncodeToString([]byte(strings.Repeat("\xfb", 32))),
		"padding bit": alt,
		"spaces":      " " + good[1:],
		"33 bytes":    base64.StdEncoding.EncodeToString(make([]byte, 33)),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := key.Parse(s)
			require.ErrorIs(t, err, key.ErrInvalid)
		})
	}
	_, err := key.ParseHex("zz")
	require.Error(t, err)
	_, err = key.ParseHex(strings.Repeat("g", 64))
	require.Error(t, err)
}

func TestJSONAndWipe(t *testing.T) {
	priv, err := key.Generate()
	require.NoError(t, err)
	b, err := json.Marshal(struct{ K key.Key }{priv})
	require.NoError(t, err)
	assert.Contains(t, string(b), priv.String())
	var back struct{ K key.Key }
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, priv, back.K)
	require.Error(t, json.Unmarshal([]byte(`{"K":"nope"}`), &back))

	priv.Wipe()
	assert.True(t, priv.IsZero())
}

func FuzzParse(f *testing.F) {
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := key.Parse(s)
		if err != nil {
			return
		}
		// Strictness: a parsed key prints back exactly as given.
		require.Equal(t, s, k.String())
	})
}
