package mesh

import "encoding/binary"

// WireGuard message layout (see the WireGuard paper, section 5.4). Every message starts with a
// one-byte type followed by three reserved zero bytes.
const (
	msgInitiation  = 1
	msgResponse    = 2
	msgCookieReply = 3
	msgTransport   = 4

	sizeInitiation  = 148
	sizeResponse    = 92
	sizeCookieReply = 64
	// sizeMinTransport is the size of an empty transport message (a keepalive): 16 bytes of
	// header and a 16-byte Poly1305 tag.
	sizeMinTransport = 32
)

// packetKind is what the Bind does with a datagram read from the socket.
type packetKind uint8

const (
	// kindOther is anything that is not a well-formed WireGuard message: STUN, TURN ChannelData,
	// ICE checks, garbage. It goes to Config.OnPacket.
	kindOther packetKind = iota
	kindInitiation
	kindResponse
	kindCookieReply
	kindTransport
)

func (k packetKind) String() string {
	switch k {
	case kindInitiation:
		return "initiation"
	case kindResponse:
		return "response"
	case kindCookieReply:
		return "cookie-reply"
	case kindTransport:
		return "transport"
	default:
		return "other"
	}
}

// classify tells WireGuard messages from everything else sharing the socket. A WireGuard message
// has a type byte of 1-4, three zero reserved bytes, the exact size of its type for handshake
// messages and at least the size of a keepalive for transport messages. STUN cannot collide: its
// first two bits are zero and a STUN message whose first byte is 1-4 has a non-zero second byte
// or (for type 0x0100-0x0400 with length 0) is 20 bytes long, which is no WireGuard size. TURN
// ChannelData starts with 0x40-0x7f.
func classify(b []byte) packetKind {
	if len(b) < 4 || b[1]|b[2]|b[3] != 0 {
		return kindOther
	}
	switch b[0] {
	case msgInitiation:
		if len(b) == sizeInitiation {
			return kindInitiation
		}
	case msgResponse:
		if len(b) == sizeResponse {
			return kindResponse
		}
	case msgCookieReply:
		if len(b) == sizeCookieReply {
			return kindCookieReply
		}
	case msgTransport:
		if len(b) >= sizeMinTransport {
			return kindTransport
		}
	}
	return kindOther
}

// receiverIndex returns the receiver index of a response, cookie reply or transport message: the
// index this node chose when it sent the matching initiation or response. ok is false for other
// kinds.
func receiverIndex(kind packetKind, b []byte) (idx uint32, ok bool) {
	switch kind {
	case kindResponse:
		return binary.LittleEndian.Uint32(b[8:12]), true
	case kindCookieReply, kindTransport:
		return binary.LittleEndian.Uint32(b[4:8]), true
	}
	return 0, false
}

// senderIndex returns the sender index of an initiation or response message: the index the
// sending side allocated for the handshake (and the session derived from it).
func senderIndex(kind packetKind, b []byte) (idx uint32, ok bool) {
	switch kind {
	case kindInitiation, kindResponse:
		return binary.LittleEndian.Uint32(b[4:8]), true
	}
	return 0, false
}

// carriesPacket reports whether b, a WireGuard message (classify already said so), is a
// transport message with an IP packet in it (not a keepalive): one that goes between the tunnel
// and the socket.
func carriesPacket(b []byte) bool { return b[0] == msgTransport && len(b) > sizeMinTransport }
