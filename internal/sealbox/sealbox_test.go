package sealbox

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"testing"
)

func keyPair(t testing.TB) (priv, pub [KeySize]byte) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	copy(priv[:], k.Bytes())
	copy(pub[:], k.PublicKey().Bytes())
	return priv, pub
}

func TestSealOpen(t *testing.T) {
	priv, pub := keyPair(t)
	msg := []byte("nxd_device.secret")
	sealed, err := Seal(pub, msg)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, msg) {
		t.Fatal("sealed message contains the plaintext")
	}
	got, err := Open(priv, sealed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("got %q, want %q", got, msg)
	}
	again, _ := Seal(pub, msg)
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals of one message are identical: ephemeral key reused")
	}
}

func TestOpenRejects(t *testing.T) {
	priv, pub := keyPair(t)
	other, _ := keyPair(t)
	sealed, err := Seal(pub, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(other, sealed); !errors.Is(err, ErrOpen) {
		t.Fatalf("wrong key: err = %v, want ErrOpen", err)
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 1
		if _, err := Open(priv, bad); err == nil {
			t.Fatalf("flipped byte %d: opened", i)
		}
	}
	if _, err := Open(priv, sealed[:len(sealed)-1]); !errors.Is(err, ErrOpen) {
		t.Fatalf("truncated: err = %v", err)
	}
}

func FuzzOpen(f *testing.F) {
	priv, pub := keyPair(f)
	sealed, _ := Seal(pub, []byte("token"))
	f.Add(sealed)
	f.Add([]byte{})
	f.Add(make([]byte, 48))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Only the one genuine message may open: anything else would be a forgery of AES-GCM.
		if _, err := Open(priv, data); err == nil && !bytes.Equal(data, sealed) {
			t.Fatalf("opened forged message %x", data)
		}
	})
}
