package mesh

import (
	"net/netip"
	"testing"

	"github.com/nexodus-sdk/nexodus/key"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClassify(t *testing.T) {
	mk := func(typ byte, n int) []byte {
		b := make([]byte, n)
		b[0] = typ
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want packetKind
	}{
		{"initiation", mk(1, 148), kindInitiation},
		{"response", mk(2, 92), kindResponse},
		{"cookie", mk(3, 64), kindCookieReply},
		{"keepalive", mk(4, 32), kindTransport},
		{"data", mk(4, 1452), kindTransport},
		{"short transport", mk(4, 31), kindOther},
		{"initiation wrong size", mk(1, 149), kindOther},
		{"type 5", mk(5, 148), kindOther},
		{"type 0", mk(0, 148), kindOther},
		{"reserved byte set", append([]byte{1, 0, 1, 0}, make([]byte, 144)...), kindOther},
		{"stun binding request", []byte("\x00\x01\x00\x00\x21\x12\xa4\x42aaaaaaaaaaaa"), kindOther},
		{"stun success", append([]byte{1, 1, 0, 0}, make([]byte, 144)...), kindOther},
		{"channel data", append([]byte{0x40, 0, 0, 0}, make([]byte, 60)...), kindOther},
		{"empty", nil, kindOther},
		{"three bytes", []byte{4, 0, 0}, kindOther},
	} {
		assert.Equal(t, tc.want, classify(tc.b), tc.name)
	}
}

func FuzzClassify(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0})
	f.Add(append([]byte{1, 0, 0, 0}, make([]byte, 144)...))
	f.Add(append([]byte{2, 0, 0, 0}, make([]byte, 88)...))
	f.Add(append([]byte{3, 0, 0, 0}, make([]byte, 60)...))
	f.Add(append([]byte{4, 0, 0, 0}, make([]byte, 28)...))
	f.Add([]byte("\x00\x01\x00\x00\x21\x12\xa4\x42aaaaaaaaaaaa"))
	f.Add([]byte{0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4})
	priv := newKey(f)
	b := newBind(&stdIO{}, newInitiatorIdentifier(priv), priv.Public(), nil, discardLogger())
	b.upsertPeer(key.Key{9}, []netip.AddrPort{ap("127.0.0.1:1")})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		k := classify(pkt)
		if k != kindOther {
			require.True(t, len(pkt) >= 4 && pkt[0] >= 1 && pkt[0] <= 4 && pkt[1]|pkt[2]|pkt[3] == 0, "classified %x as %v", pkt, k)
		}
		switch k {
		case kindInitiation:
			require.Len(t, pkt, sizeInitiation)
		case kindResponse:
			require.Len(t, pkt, sizeResponse)
		case kindCookieReply:
			require.Len(t, pkt, sizeCookieReply)
		case kindTransport:
			require.GreaterOrEqual(t, len(pkt), sizeMinTransport)
		}
		_, ok := receiverIndex(k, pkt)
		require.Equal(t, k == kindResponse || k == kindCookieReply || k == kindTransport, ok, "receiverIndex disagrees with classify")
		_, ok = senderIndex(k, pkt)
		require.Equal(t, k == kindInitiation || k == kindResponse, ok, "senderIndex disagrees with classify")
		// The whole demultiplexer must accept anything without panicking.
		var delivered bool
		b.onPacket = func([]byte, netip.AddrPort) { delivered = true }
		ep := b.demux(pkt, ap("127.0.0.1:2"))
		require.Equal(t, k == kindOther, delivered, "delivered to OnPacket")
		if k == kindOther {
			require.Nil(t, ep, "endpoint for a non-WireGuard packet")
		}
	})
}
