package mesh

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus/key"
	"github.com/stretchr/testify/require"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// captureIO is a packetIO that records writes and never reads.
type captureIO struct {
	sent chan []byte
	stop chan struct{}
}

func newCaptureIO() *captureIO {
	return &captureIO{sent: make(chan []byte, 8), stop: make(chan struct{})}
}

func (c *captureIO) read([][]byte, []int, []netip.AddrPort) (int, error) {
	<-c.stop
	return 0, net.ErrClosed
}

func (c *captureIO) write(bufs [][]byte, _ netip.AddrPort) error {
	for _, b := range bufs {
		select {
		case c.sent <- bytes.Clone(b):
		default:
		}
	}
	return nil
}
func (c *captureIO) batchSize() int            { return 1 }
func (c *captureIO) localAddr() netip.AddrPort { return ap("127.0.0.1:1") }
func (c *captureIO) interrupt() error          { return nil }
func (c *captureIO) resume() error             { return nil }

// initiationFrom has wireguard-go, with the private key priv, send a handshake initiation to the
// peer with public key to, and returns it with the sender's Bind (which saw it go out).
func initiationFrom(t *testing.T, priv, to key.Key) ([]byte, *bind) {
	t.Helper()
	cio := newCaptureIO()
	b := newBind(cio, newInitiatorIdentifier(priv), priv.Public(), nil, discardLogger())
	b.upsertPeer(to, []netip.AddrPort{ap("127.0.0.1:2")})
	dev := device.NewDevice(tuntest.NewChannelTUN().TUN(), b, newDeviceLogger(discardLogger()))
	defer func() {
		close(cio.stop)
		dev.Close()
	}()
	require.NoError(t, dev.IpcSet("private_key="+priv.Hex()+"\npublic_key="+to.Hex()+"\nendpoint="+to.Hex()+"\n"))
	require.NoError(t, dev.Up())
	b.activate(to)
	dev.LookupPeer(device.NoisePublicKey(to)).SendKeepalive()
	select {
	case pkt := <-cio.sent:
		require.Equal(t, kindInitiation, classify(pkt), "sent message")
		return pkt, b
	case <-time.After(testTimeout):
		t.Fatal("no initiation sent")
		return nil, nil
	}
}

// TestInitiatorIdentifier checks the initiation decryption against a handshake initiation made
// by wireguard-go itself, and that the Bind learns the sender index it contains.
func TestInitiatorIdentifier(t *testing.T) {
	privA, privB := newKey(t), newKey(t)
	pubA, pubB := privA.Public(), privB.Public()
	pkt, bA := initiationFrom(t, privA, pubB)
	identB := newInitiatorIdentifier(privB)
	got, ok := identB.initiator(pkt)
	require.True(t, ok, "initiation to B not identified")
	require.Equal(t, pubA, got)
	// Not addressed to C: MAC1 fails.
	_, ok = newInitiatorIdentifier(newKey(t)).initiator(pkt)
	require.False(t, ok, "initiation to B identified by C")
	// A tampered static key is rejected (MAC1 covers it).
	bad := bytes.Clone(pkt)
	bad[50] ^= 1
	_, ok = identB.initiator(bad)
	require.False(t, ok, "tampered initiation identified")
	// The Bind remembered the sender index: a response to it maps back to B.
	ep, ok := bA.demux(response(binary.LittleEndian.Uint32(pkt[4:8])), ap("10.9.9.9:9")).(*endpoint)
	require.True(t, ok)
	require.NotNil(t, ep.peer)
	require.Equal(t, pubB, ep.peer.key)
	require.Equal(t, ap("10.9.9.9:9"), ep.src)
}

// response returns a handshake response to our handshake index idx.
func response(idx uint32) []byte {
	resp := make([]byte, sizeResponse)
	resp[0] = msgResponse
	binary.LittleEndian.PutUint32(resp[8:], idx)
	return resp
}
