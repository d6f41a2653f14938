package mesh

import (
	"crypto/hmac"
	"crypto/subtle"
	"hash"

	"github.com/nexodus-sdk/nexodus/key"
	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
)

// Constants of WireGuard's Noise_IKpsk2 handshake.
const (
	noiseConstruction = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
	wgIdentifier      = "WireGuard v1 zx2c4 Jason@zx2c4.com"
	wgLabelMAC1       = "mac1----"
)

// initiatorIdentifier recovers the static public key of the sender of a handshake initiation:
// the first three steps of the responder's side of the handshake (mix in our static key and the
// initiator's ephemeral key, one Diffie-Hellman, one AEAD open). The Bind uses it to map an
// initiation arriving from an unknown address to the right peer, so that the endpoint it hands
// wireguard-go is bound to that peer's key.
//
// This does not authenticate the initiator: anyone can encrypt any public key to us. It is a
// routing hint; wireguard-go still verifies the handshake (the static-static DH and the
// timestamp), and the Bind learns a new address only after wireguard-go has accepted a packet
// from it. The cost is one X25519 per initiation received; initiations with a wrong MAC1 (not
// addressed to our key) are rejected before that with one BLAKE2s.
type initiatorIdentifier struct {
	private  key.Key
	hash0    [blake2s.Size]byte // HASH(HASH(HASH(construction) || identifier) || our public key)
	chainKey [blake2s.Size]byte // HASH(construction)
	mac1Key  [blake2s.Size]byte // HASH(label-mac1 || our public key)
}

func newInitiatorIdentifier(private key.Key) *initiatorIdentifier {
	id := &initiatorIdentifier{private: private}
	// Clamp as wireguard-go does; curve25519.X25519 clamps too, this keeps the stored key canonical.
	id.private[0] &= 248
	id.private[31] = (id.private[31] & 127) | 64
	pub := id.private.Public()
	id.chainKey = blake2s.Sum256([]byte(noiseConstruction))
	h, _ := blake2s.New256(nil)
	h.Write(id.chainKey[:])
	h.Write([]byte(wgIdentifier))
	var initialHash [blake2s.Size]byte
	h.Sum(initialHash[:0])
	h.Reset()
	h.Write(initialHash[:])
	h.Write(pub[:])
	h.Sum(id.hash0[:0])
	h.Reset()
	h.Write([]byte(wgLabelMAC1))
	h.Write(pub[:])
	h.Sum(id.mac1Key[:0])
	return id
}

func newBlake2s() hash.Hash {
	h, _ := blake2s.New256(nil)
	return h
}

func hmac1(out *[blake2s.Size]byte, key, in0 []byte) {
	m := hmac.New(newBlake2s, key)
	m.Write(in0)
	m.Sum(out[:0])
}

func hmac2(out *[blake2s.Size]byte, key, in0, in1 []byte) {
	m := hmac.New(newBlake2s, key)
	m.Write(in0)
	m.Write(in1)
	m.Sum(out[:0])
}

// validMAC1 reports whether an initiation carries a MAC1 computed with our public key.
func (id *initiatorIdentifier) validMAC1(msg []byte) bool {
	smac1 := len(msg) - 32
	mac, _ := blake2s.New128(id.mac1Key[:])
	mac.Write(msg[:smac1])
	var sum [blake2s.Size128]byte
	mac.Sum(sum[:0])
	return subtle.ConstantTimeCompare(sum[:], msg[smac1:smac1+16]) == 1
}

// initiator returns the static public key sealed in a handshake initiation addressed to us.
// msg must be a full initiation message (classify returned kindInitiation).
func (id *initiatorIdentifier) initiator(msg []byte) (pub key.Key, ok bool) {
	if len(msg) != sizeInitiation || !id.validMAC1(msg) {
		return pub, false
	}
	ephemeral := msg[8:40]
	static := msg[40:88]

	var h [blake2s.Size]byte
	hh := newBlake2s()
	hh.Write(id.hash0[:])
	hh.Write(ephemeral)
	hh.Sum(h[:0])

	// chainKey = KDF1(C, ephemeral)
	var ck, sealKey [blake2s.Size]byte
	hmac1(&ck, id.chainKey[:], ephemeral)
	hmac1(&ck, ck[:], []byte{0x1})

	ss, err := curve25519.X25519(id.private[:], ephemeral)
	if err != nil {
		return pub, false // low-order point
	}
	// chainKey, sealKey = KDF2(chainKey, ss)
	var prk [blake2s.Size]byte
	hmac1(&prk, ck[:], ss)
	hmac1(&ck, prk[:], []byte{0x1})
	hmac2(&sealKey, prk[:], ck[:], []byte{0x2})

	aead, err := chacha20poly1305.New(sealKey[:])
	if err != nil {
		return pub, false
	}
	var zeroNonce [chacha20poly1305.NonceSize]byte
	if _, err := aead.Open(pub[:0], zeroNonce[:], static, h[:]); err != nil {
		return key.Key{}, false
	}
	return pub, true
}
