package mesh

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestPathSelector(t *testing.T) {
	var p pathSelector
	c1, c2, c3 := ap("192.168.1.5:51820"), ap("203.0.113.7:40000"), ap("198.51.100.1:3478")

	if cur, cands := p.targets(); cur.IsValid() || len(cands) != 0 {
		t.Fatal("empty selector has targets")
	}
	p.setCandidates([]netip.AddrPort{c1, c2})
	if cur, cands := p.targets(); cur.IsValid() || len(cands) != 2 {
		t.Fatalf("unconfirmed: want all candidates, got %v %v", cur, cands)
	}
	// The first address wireguard-go accepts becomes the path.
	if !p.learn(c2, p.epoch()) {
		t.Fatal("learn did not change the path")
	}
	if cur, _ := p.targets(); cur != c2 {
		t.Fatalf("path %v, want %v", cur, c2)
	}
	if p.learn(c2, p.epoch()) {
		t.Fatal("learning the current path again reported a change")
	}
	// Unchanged candidates keep the path; candidates without it drop it.
	if p.setCandidates([]netip.AddrPort{c1, c2}) {
		t.Fatal("same candidates reset the path")
	}
	if !p.setCandidates([]netip.AddrPort{c1}) {
		t.Fatal("candidates without the path did not reset it")
	}
	if cur, cands := p.targets(); cur.IsValid() || len(cands) != 1 {
		t.Fatalf("after reset: %v %v", cur, cands)
	}
	// A pin wins over observations made before it.
	stale := p.epoch()
	p.pin(c3)
	if p.learn(c1, stale) {
		t.Fatal("stale observation overrode the pin")
	}
	if cur, pinned, relayed, _ := p.status(); cur != c3 || !pinned || relayed {
		t.Fatalf("pinned status %v %v", cur, pinned)
	}
	// A pinned path survives candidate changes...
	if p.setCandidates([]netip.AddrPort{c2}) {
		t.Fatal("candidate change dropped a pinned path")
	}
	// ...but follows the peer when it roams after the pin.
	if !p.learn(c1, p.epoch()) || p.current() != c1 {
		t.Fatal("roaming after the pin not followed")
	}
	// Unpinning goes back to the candidates.
	p.pin(netip.AddrPort{})
	if cur, cands := p.targets(); cur.IsValid() || len(cands) != 1 || cands[0] != c2 {
		t.Fatalf("after unpin: %v %v", cur, cands)
	}
	if p.learn(netip.AddrPort{}, p.epoch()) {
		t.Fatal("learned an invalid address")
	}

	// A relay route is the path until left explicitly; roaming does not move it.
	p.pin(c1)
	send := func([]byte) error { return nil }
	p.setRelay(send)
	if r, cur, cands := p.route(); r == nil || cur.IsValid() || len(cands) != 0 {
		t.Fatalf("relayed route: %v %v %v", r, cur, cands)
	}
	if cur, pinned, relayed, since := p.status(); cur.IsValid() || pinned || !relayed || since.IsZero() {
		t.Fatalf("relayed status %v %v %v %v", cur, pinned, relayed, since)
	}
	if p.learn(c2, p.epoch()) || !p.relayed() {
		t.Fatal("a packet from the socket moved a relayed path")
	}
	// Leaving the relay without an address goes back to the candidates...
	p.setRelay(nil)
	if r, cur, cands := p.route(); r != nil || cur.IsValid() || len(cands) != 1 || cands[0] != c2 {
		t.Fatalf("after relay off: %v %v %v", r, cur, cands)
	}
	// ...and a pin leaves it for that address.
	p.setRelay(send)
	p.pin(c3)
	if r, cur, _ := p.route(); r != nil || cur != c3 || p.relayed() {
		t.Fatalf("pin after relay: %v %v", r, cur)
	}
}

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
		if got := classify(tc.b); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
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
	priv, _ := GeneratePrivateKey()
	ident, err := newInitiatorIdentifier(priv)
	if err != nil {
		f.Fatal(err)
	}
	b := newBind(&stdIO{}, ident, PublicKey(priv), nil, discardLogger())
	var other [32]byte
	other[0] = 9
	b.upsertPeer(other, []netip.AddrPort{ap("127.0.0.1:1")})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		k := classify(pkt)
		if k != kindOther {
			if len(pkt) < 4 || pkt[0] < 1 || pkt[0] > 4 || pkt[1]|pkt[2]|pkt[3] != 0 {
				t.Fatalf("classified %x as %v", pkt, k)
			}
		}
		switch k {
		case kindInitiation:
			if len(pkt) != sizeInitiation {
				t.Fatal("bad initiation size")
			}
		case kindResponse:
			if len(pkt) != sizeResponse {
				t.Fatal("bad response size")
			}
		case kindCookieReply:
			if len(pkt) != sizeCookieReply {
				t.Fatal("bad cookie size")
			}
		case kindTransport:
			if len(pkt) < sizeMinTransport {
				t.Fatal("bad transport size")
			}
		}
		if _, ok := receiverIndex(k, pkt); ok != (k == kindResponse || k == kindCookieReply || k == kindTransport) {
			t.Fatal("receiverIndex disagrees with classify")
		}
		if _, ok := senderIndex(k, pkt); ok != (k == kindInitiation || k == kindResponse) {
			t.Fatal("senderIndex disagrees with classify")
		}
		// The whole demultiplexer must accept anything without panicking.
		var delivered bool
		b.onPacket = func([]byte, netip.AddrPort) { delivered = true }
		ep := b.demux(pkt, ap("127.0.0.1:2"))
		if k == kindOther && (!delivered || ep != nil) {
			t.Fatal("non-WireGuard packet not delivered to OnPacket")
		}
		if k != kindOther && delivered {
			t.Fatal("WireGuard packet delivered to OnPacket")
		}
	})
}

// captureIO is a packetIO that records writes and never reads.
type captureIO struct {
	sent chan []byte
	stop chan struct{}
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

// TestInitiatorIdentifier checks the initiation decryption against a handshake initiation made
// by wireguard-go itself, and that the Bind learns the sender index it contains.
func TestInitiatorIdentifier(t *testing.T) {
	privA, _ := GeneratePrivateKey()
	privB, _ := GeneratePrivateKey()
	pubA, pubB := PublicKey(privA), PublicKey(privB)
	cio := &captureIO{sent: make(chan []byte, 8), stop: make(chan struct{})}
	identA, _ := newInitiatorIdentifier(privA)
	bA := newBind(cio, identA, pubA, nil, discardLogger())
	bA.upsertPeer(pubB, []netip.AddrPort{ap("127.0.0.1:2")})
	dev := device.NewDevice(tuntest.NewChannelTUN().TUN(), bA, newDeviceLogger(discardLogger()))
	defer func() {
		close(cio.stop)
		dev.Close()
	}()
	if err := dev.IpcSet("private_key=" + hexKey(privA) + "\npublic_key=" + hexKey(pubB) + "\nendpoint=" + hexKey(pubB) + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := dev.Up(); err != nil {
		t.Fatal(err)
	}
	bA.activate(pubB)
	dev.LookupPeer(device.NoisePublicKey(pubB)).SendKeepalive()
	var pkt []byte
	select {
	case pkt = <-cio.sent:
	case <-time.After(testTimeout):
		t.Fatal("no initiation sent")
	}
	if classify(pkt) != kindInitiation {
		t.Fatalf("sent %v, want initiation", classify(pkt))
	}
	identB, _ := newInitiatorIdentifier(privB)
	got, ok := identB.initiator(pkt)
	if !ok || got != pubA {
		t.Fatalf("initiator = %x, %v; want %x", got, ok, pubA)
	}
	// Not addressed to C: MAC1 fails.
	privC, _ := GeneratePrivateKey()
	identC, _ := newInitiatorIdentifier(privC)
	if _, ok := identC.initiator(pkt); ok {
		t.Fatal("initiation to B identified by C")
	}
	// A tampered static key is rejected (MAC1 covers it).
	bad := bytes.Clone(pkt)
	bad[50] ^= 1
	if _, ok := identB.initiator(bad); ok {
		t.Fatal("tampered initiation identified")
	}
	// The Bind remembered the sender index: a response to it maps back to B.
	idx := binary.LittleEndian.Uint32(pkt[4:8])
	resp := make([]byte, sizeResponse)
	resp[0] = msgResponse
	binary.LittleEndian.PutUint32(resp[8:], idx)
	ep, ok := bA.demux(resp, ap("10.9.9.9:9")).(*endpoint)
	if !ok || ep.peer == nil || ep.peer.key != pubB || ep.src != ap("10.9.9.9:9") {
		t.Fatalf("response mapped to %+v", ep)
	}
}
