package sealbox

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/require"
)

func keyPair(t testing.TB) (priv, pub [KeySize]byte) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	copy(priv[:], k.Bytes())
	copy(pub[:], k.PublicKey().Bytes())
	return priv, pub
}

func TestSealOpen(t *testing.T) {
	priv, pub := keyPair(t)
	msg := []byte("nxd_device.secret")
	sealed, err := Seal(pub, msg)
	require.NoError(t, err)
	require.False(t, bytes.Contains(sealed, msg), "the sealed message contains the plaintext")
	got, err := Open(priv, sealed)
	require.NoError(t, err)
	require.Equal(t, msg, got)
	again, err := Seal(pub, msg)
	require.NoError(t, err)
	require.NotEqual(t, sealed, again, "two seals of one message are identical: ephemeral key reused")
}

func TestOpenRejects(t *testing.T) {
	priv, pub := keyPair(t)
	other, _ := keyPair(t)
	sealed, err := Seal(pub, []byte("secret"))
	require.NoError(t, err)
	_, err = Open(other, sealed)
	require.ErrorIs(t, err, ErrOpen, "wrong key")
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 1
		_, err := Open(priv, bad)
		require.Error(t, err, "flipped byte %d: opened", i)
	}
	_, err = Open(priv, sealed[:len(sealed)-1])
	require.ErrorIs(t, err, ErrOpen, "truncated")
}

func FuzzOpen(f *testing.F) {
	priv, pub := keyPair(f)
	sealed, _ := Seal(pub, []byte("token"))
	f.Add(sealed)
	f.Add([]byte{})
	f.Add(make([]byte, 48))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Only the one genuine message may open: anything else would be a forgery of AES-GCM.
		if _, err := Open(priv, data); err == nil {
			require.Equal(t, sealed, data, "opened a forged message")
		}
	})
}
