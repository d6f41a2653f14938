package wanlab

// nfqueue.go holds the NFQUEUE wire format (nfnetlink_queue over NETLINK_NETFILTER): the
// configuration and verdict messages the impairer sends, and the parser for the packet messages
// the kernel sends it. Pure functions on byte slices, so that the parser can be fuzzed without a
// kernel; the socket itself is in impair.go.

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Constants of <linux/netlink.h>, <linux/netfilter/nfnetlink.h> and
// <linux/netfilter/nfnetlink_queue.h>.
const (
	nlmsgHdrLen = 16
	nfgenHdrLen = 4
	nlattrHdr   = 4

	nlmsgError = 2 // NLMSG_ERROR
	nlmsgDone  = 3 // NLMSG_DONE

	nlmFRequest = 0x1
	nlmFAck     = 0x4

	nfnlSubsysQueue = 3

	nfqnlMsgPacket       = 0
	nfqnlMsgVerdict      = 1
	nfqnlMsgConfig       = 2
	nfqnlMsgVerdictBatch = 3

	nfqaPacketHdr  = 1
	nfqaVerdictHdr = 2

	nfqaCfgCmd      = 1
	nfqaCfgParams   = 2
	nfqaCfgQueueLen = 3

	nfqnlCfgCmdBind = 1
	nfqnlCopyMeta   = 1

	nfDrop   = 0
	nfAccept = 1

	nlaTypeMask = 0x3fff // strips NLA_F_NESTED and NLA_F_NET_BYTEORDER
)

var errShortMessage = errors.New("wanlab: short netlink message")

// nlAlign rounds n up to netlink's 4-byte alignment.
func nlAlign(n int) int { return (n + 3) &^ 3 }

// nfqMessage builds one nfnetlink_queue request: netlink header, nfgenmsg for queue num and
// family AF_UNSPEC, then the attributes (type, value) in order.
func nfqMessage(msgType uint16, flags uint16, seq uint32, queue uint16, attrs ...nlAttr) []byte {
	size := nlmsgHdrLen + nfgenHdrLen
	for _, a := range attrs {
		size += nlAlign(nlattrHdr + len(a.val))
	}
	b := make([]byte, size)
	binary.NativeEndian.PutUint32(b[0:], uint32(size))
	binary.NativeEndian.PutUint16(b[4:], nfnlSubsysQueue<<8|msgType)
	binary.NativeEndian.PutUint16(b[6:], nlmFRequest|flags)
	binary.NativeEndian.PutUint32(b[8:], seq)
	// b[12:16] port id 0: the kernel. nfgenmsg: family 0, version 0, res_id (big endian).
	binary.BigEndian.PutUint16(b[nlmsgHdrLen+2:], queue)
	off := nlmsgHdrLen + nfgenHdrLen
	for _, a := range attrs {
		binary.NativeEndian.PutUint16(b[off:], uint16(nlattrHdr+len(a.val)))
		binary.NativeEndian.PutUint16(b[off+2:], a.typ)
		copy(b[off+nlattrHdr:], a.val)
		off += nlAlign(nlattrHdr + len(a.val))
	}
	return b
}

type nlAttr struct {
	typ uint16
	val []byte
}

// bindMessage binds the socket to queue (for IPv4; the command's family is informational on
// kernels since 3.8).
func bindMessage(seq uint32, queue uint16) []byte {
	cmd := []byte{nfqnlCfgCmdBind, 0, 0, 2} // command, pad, pf AF_INET (big endian)
	return nfqMessage(nfqnlMsgConfig, nlmFAck, seq, queue, nlAttr{nfqaCfgCmd, cmd})
}

// paramsMessage asks for metadata only (no packet bytes: the impairer decides by arrival alone)
// and a queue of maxLen packets: a long delay at a high rate keeps thousands queued, and the
// kernel drops what does not fit (1024 by default).
func paramsMessage(seq uint32, queue uint16, maxLen uint32) []byte {
	params := make([]byte, 5) // copy_range (big endian), copy_mode
	params[4] = nfqnlCopyMeta
	qlen := binary.BigEndian.AppendUint32(nil, maxLen)
	return nfqMessage(nfqnlMsgConfig, nlmFAck, seq, queue,
		nlAttr{nfqaCfgParams, params}, nlAttr{nfqaCfgQueueLen, qlen})
}

// verdictMessage gives one packet its verdict; with batch, every packet of the queue with an id
// up to id gets it (NFQNL_MSG_VERDICT_BATCH).
func verdictMessage(queue uint16, id uint32, verdict uint32, batch bool) []byte {
	v := binary.BigEndian.AppendUint32(nil, verdict)
	v = binary.BigEndian.AppendUint32(v, id)
	typ := uint16(nfqnlMsgVerdict)
	if batch {
		typ = nfqnlMsgVerdictBatch
	}
	return nfqMessage(typ, 0, 0, queue, nlAttr{nfqaVerdictHdr, v})
}

// nlEvent is one message the kernel sent: a queued packet's id, or an acknowledgement or error
// (errno 0 is an acknowledgement).
type nlEvent struct {
	packet bool
	id     uint32
	ack    bool
	errno  int32
	seq    uint32
}

// parseMessages parses a buffer read from the socket (one or more netlink messages) and
// appends what it found to dst. Messages of other types are skipped; a malformed buffer gives an
// error along with what was parsed before it.
func parseMessages(dst []nlEvent, b []byte) ([]nlEvent, error) {
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return dst, errShortMessage
		}
		size := int(binary.NativeEndian.Uint32(b[0:]))
		if size < nlmsgHdrLen || size > len(b) {
			return dst, fmt.Errorf("wanlab: netlink message length %d of %d bytes", size, len(b))
		}
		typ := binary.NativeEndian.Uint16(b[4:])
		seq := binary.NativeEndian.Uint32(b[8:])
		body := b[nlmsgHdrLen:size]
		switch {
		case typ == nlmsgError:
			if len(body) < 4 {
				return dst, errShortMessage
			}
			// struct nlmsgerr: a negative errno, then the request's header.
			dst = append(dst, nlEvent{ack: true, errno: -int32(binary.NativeEndian.Uint32(body)), seq: seq})
		case typ == nlmsgDone:
		case typ == nfnlSubsysQueue<<8|nfqnlMsgPacket:
			id, err := packetID(body)
			if err != nil {
				return dst, err
			}
			dst = append(dst, nlEvent{packet: true, id: id})
		}
		b = b[min(nlAlign(size), len(b)):]
	}
	return dst, nil
}

// packetID finds NFQA_PACKET_HDR in the body of a packet message (nfgenmsg, then attributes)
// and returns its packet id.
func packetID(body []byte) (uint32, error) {
	if len(body) < nfgenHdrLen {
		return 0, errShortMessage
	}
	attrs := body[nfgenHdrLen:]
	for len(attrs) >= nlattrHdr {
		alen := int(binary.NativeEndian.Uint16(attrs[0:]))
		atyp := binary.NativeEndian.Uint16(attrs[2:]) & nlaTypeMask
		if alen < nlattrHdr || alen > len(attrs) {
			return 0, fmt.Errorf("wanlab: netlink attribute length %d of %d bytes", alen, len(attrs))
		}
		if atyp == nfqaPacketHdr {
			if alen < nlattrHdr+4 {
				return 0, errShortMessage
			}
			return binary.BigEndian.Uint32(attrs[nlattrHdr:]), nil
		}
		attrs = attrs[min(nlAlign(alen), len(attrs)):]
	}
	return 0, errors.New("wanlab: packet message without a packet header")
}
