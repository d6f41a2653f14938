package wanlab

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// packetMessage is what the kernel sends for a queued packet, with metadata only: the packet
// header attribute (id, hw protocol, hook) and a mark attribute before it to skip.
func packetMessage(queue uint16, id uint32) []byte {
	hdr := binary.BigEndian.AppendUint32(nil, id)
	hdr = append(hdr, 0x08, 0x00, 3) // ETH_P_IP, NF_INET_LOCAL_OUT
	mark := binary.BigEndian.AppendUint32(nil, 7)
	return nfqMessage(nfqnlMsgPacket, 0, 0, queue, nlAttr{3, mark}, nlAttr{nfqaPacketHdr | 0x4000, hdr})
}

func errorMessage(seq uint32, errno int32) []byte {
	b := make([]byte, nlmsgHdrLen+4+nlmsgHdrLen)
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], nlmsgError)
	binary.NativeEndian.PutUint32(b[8:], seq)
	binary.NativeEndian.PutUint32(b[nlmsgHdrLen:], uint32(-errno))
	return b
}

func TestParseMessages(t *testing.T) {
	buf := append(packetMessage(0, 41), packetMessage(0, 42)...)
	buf = append(buf, errorMessage(2, 0)...)
	buf = append(buf, errorMessage(3, 1)...) // EPERM
	evs, err := parseMessages(nil, buf)
	require.NoError(t, err)
	assert.Equal(t, []nlEvent{
		{packet: true, id: 41},
		{packet: true, id: 42},
		{ack: true, seq: 2},
		{ack: true, errno: 1, seq: 3},
	}, evs)

	_, err = parseMessages(nil, buf[:10])
	require.Error(t, err, "a truncated header")
	evs, err = parseMessages(nil, buf[:len(packetMessage(0, 41))+20])
	require.Error(t, err, "a truncated second message")
	assert.Equal(t, []nlEvent{{packet: true, id: 41}}, evs, "what came before the damage")
	noHdr := nfqMessage(nfqnlMsgPacket, 0, 0, 0, nlAttr{3, []byte{0, 0, 0, 1}})
	_, err = parseMessages(nil, noHdr)
	require.Error(t, err, "a packet message without its header")
}

func TestVerdictMessage(t *testing.T) {
	b := verdictMessage(5, 0x01020304, nfAccept, true)
	require.Len(t, b, nlmsgHdrLen+nfgenHdrLen+nlattrHdr+8)
	assert.Equal(t, uint32(len(b)), binary.NativeEndian.Uint32(b[0:]))
	assert.Equal(t, uint16(nfnlSubsysQueue<<8|nfqnlMsgVerdictBatch), binary.NativeEndian.Uint16(b[4:]))
	assert.Equal(t, uint16(5), binary.BigEndian.Uint16(b[nlmsgHdrLen+2:]), "queue number, big endian")
	attr := b[nlmsgHdrLen+nfgenHdrLen:]
	assert.Equal(t, uint16(nfqaVerdictHdr), binary.NativeEndian.Uint16(attr[2:]))
	assert.Equal(t, []byte{0, 0, 0, 1, 1, 2, 3, 4}, attr[nlattrHdr:], "verdict and id, big endian")

	p := paramsMessage(2, 0, 1<<16)
	assert.Zero(t, len(p)%4, "attributes padded to 4 bytes")
}

// The kernel's packet messages are parsed from whatever the socket returns: no input may
// panic, and a well-formed packet message always yields its id.
func FuzzParseMessages(f *testing.F) {
	f.Add(packetMessage(0, 1))
	f.Add(append(packetMessage(1, 2), errorMessage(9, 0)...))
	f.Add(errorMessage(1, 1))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := parseMessages(nil, b)
		if err == nil {
			for _, ev := range evs {
				require.True(t, ev.packet || ev.ack)
			}
		}
		if len(b) >= 4 {
			id := binary.NativeEndian.Uint32(b)
			evs, err := parseMessages(nil, packetMessage(0, id))
			require.NoError(t, err)
			require.Equal(t, []nlEvent{{packet: true, id: id}}, evs)
		}
	})
}
