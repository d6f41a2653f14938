//go:build linux

package mesh

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP segmentation offload (UDP_SEGMENT, Linux 4.18) and UDP generic receive offload (UDP_GRO,
// Linux 5.0) let one sendmsg carry many datagrams and one recvmsg return many:
//
//   - send: equal-sized datagrams to one destination (the last may be shorter) are handed to the
//     kernel as one buffer (here: one iovec per datagram, no copy) with a UDP_SEGMENT control
//     message giving the datagram size; the kernel (or the NIC) cuts it into datagrams;
//   - receive: with UDP_GRO set on the socket, the kernel may deliver several datagrams of one
//     flow as one, with a UDP_GRO control message giving the size they were cut at; the reader
//     splits them again.
//
// On loopback a segmented send reaches a GRO socket as one unit, never cut at all.

const (
	// udpMaxSegments is the most datagrams one UDP_SEGMENT send may carry (the kernel's
	// UDP_MAX_SEGMENTS; newer kernels allow more).
	udpMaxSegments = 64
	// Largest UDP payloads, which bound a segmented send: the IP total length is 16 bits and
	// includes the IPv4 header; the IPv6 payload length does not include the IPv6 header.
	maxUDPPayload4 = 1<<16 - 1 - 20 - 8
	maxUDPPayload6 = 1<<16 - 1 - 8
)

var (
	// gsoControlLen is the control buffer of a UDP_SEGMENT send (a 16-bit size).
	gsoControlLen = unix.CmsgSpace(2)
	// groControlLen is the receive control buffer per datagram: room for the UDP_GRO message
	// (an int) and, should the socket ever get another option, one more small message.
	groControlLen = 2 * unix.CmsgSpace(4)
)

var errControl = errors.New("mesh: malformed socket control message")

// putGSOControl writes a UDP_SEGMENT control message for datagrams of size bytes at the start
// of b, which must hold gsoControlLen bytes, and returns its length.
func putGSOControl(b []byte, size uint16) int {
	b = b[:gsoControlLen]
	clear(b)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[unix.CmsgLen(0):], size)
	return gsoControlLen
}

// cmsgAlign rounds n up to the alignment of control messages (the size of a long on Linux).
func cmsgAlign(n int) int {
	const a = int(unsafe.Sizeof(uintptr(0)))
	return (n + a - 1) &^ (a - 1)
}

// groSegmentSize returns the segment size of a UDP_GRO control message in control (as the kernel
// filled it in for one received datagram), or 0 when there is none: the datagram was not
// coalesced. It reads the headers field by field, so any input is safe.
func groSegmentSize(control []byte) (int, error) {
	const hdr = unix.SizeofCmsghdr
	lenSize := hdr - 8 // cmsg_len is a size_t, followed by two ints
	for len(control) >= hdr {
		var l uint64
		if lenSize == 8 {
			l = binary.NativeEndian.Uint64(control)
		} else {
			l = uint64(binary.NativeEndian.Uint32(control))
		}
		level := int32(binary.NativeEndian.Uint32(control[lenSize:]))
		typ := int32(binary.NativeEndian.Uint32(control[lenSize+4:]))
		if l < hdr || l > uint64(len(control)) {
			return 0, errControl
		}
		if level == unix.SOL_UDP && typ == unix.UDP_GRO {
			data := control[cmsgAlign(hdr):l]
			var size int
			switch {
			case len(data) >= 4:
				size = int(int32(binary.NativeEndian.Uint32(data)))
			case len(data) >= 2:
				size = int(binary.NativeEndian.Uint16(data))
			default:
				return 0, errControl
			}
			if size < 0 || size > 1<<16-1 {
				return 0, errControl
			}
			return size, nil
		}
		next := cmsgAlign(int(l))
		if next >= len(control) {
			break
		}
		control = control[next:]
	}
	return 0, nil
}

// probeOffload finds out which offloads the socket can use and turns on UDP_GRO. GSO needs
// nothing set: a socket option read tells whether the kernel knows UDP_SEGMENT. GRO is only used
// where the kernel lets us read the option back (5.12 and later), as wireguard-go does: earlier
// kernels had GRO bugs.
func probeOffload(fd int, noGSO, noGRO bool) (gso, gro bool) {
	if !noGSO {
		_, err := unix.GetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		gso = err == nil
	}
	if !noGRO && unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil {
		v, err := unix.GetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO)
		gro = err == nil && v == 1
		if !gro {
			_ = unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 0)
		}
	}
	return gso, gro
}

// gsoRetryable reports whether a segmented send failed because of the segmentation, so that the
// datagrams may go out one by one: EIO when the device cannot checksum in hardware (which UDP GSO
// requires; such a socket never uses GSO again), EINVAL or EMSGSIZE when the segment size does not
// fit the path MTU.
func gsoRetryable(errno syscall.Errno) (retry, disable bool) {
	switch errno {
	case unix.EIO:
		return true, true
	case unix.EINVAL, unix.EMSGSIZE:
		return true, false
	}
	return false, false
}

// gsoGroup returns how many datagrams from the start of bufs go into one segmented send: all
// that have the size of the first, then at most one shorter, within the kernel's limits and at
// most limit. It is 1 for a datagram that cannot be segmented with others.
func gsoGroup(bufs [][]byte, maxPayload, limit int) int {
	size := len(bufs[0])
	if size == 0 {
		return 1
	}
	total, n := size, 1
	for n < len(bufs) && n < limit && n < udpMaxSegments {
		l := len(bufs[n])
		if l == 0 || l > size || total+l > maxPayload {
			break
		}
		total += l
		n++
		if l < size {
			break // a shorter datagram ends the group
		}
	}
	return n
}

// groStash holds datagrams split from coalesced reads that did not fit the caller's buffers;
// the next read hands them out before reading the socket again.
type groStash struct {
	data []byte
	segs []stashSeg
	next int // index in segs of the next datagram to hand out
}

type stashSeg struct {
	off, len int
	src      netip.AddrPort
}

func (g *groStash) pending() bool { return g.next < len(g.segs) }

// add stashes the datagrams of b, cut at size (0: b is one datagram), from src.
func (g *groStash) add(b []byte, size int, src netip.AddrPort) {
	if size <= 0 || size > len(b) {
		size = max(len(b), 1)
	}
	if len(b) == 0 {
		g.segs = append(g.segs, stashSeg{off: len(g.data), src: src})
		return
	}
	for off := 0; off < len(b); off += size {
		end := min(off+size, len(b))
		g.segs = append(g.segs, stashSeg{off: len(g.data), len: end - off, src: src})
		g.data = append(g.data, b[off:end]...)
	}
}

// drain hands out stashed datagrams into bufs, in the order they were stashed.
func (g *groStash) drain(bufs [][]byte, sizes []int, srcs []netip.AddrPort) int {
	n := 0
	for limit := min(len(bufs), len(sizes), len(srcs)); n < limit && g.pending(); n++ {
		s := g.segs[g.next]
		sizes[n] = copy(bufs[n], g.data[s.off:s.off+s.len])
		srcs[n] = s.src
		g.next++
	}
	if !g.pending() {
		g.data, g.segs, g.next = g.data[:0], g.segs[:0], 0
	}
	return n
}

// segments is how many datagrams a received datagram of n bytes, coalesced at size (0: not
// coalesced), holds.
func segments(n, size int) int {
	if size <= 0 || n <= size {
		return 1
	}
	return (n + size - 1) / size
}

// splitCoalesced cuts the got datagrams that recvmmsg put in bufs[:got] (sizes, srcs) at their
// GRO segment sizes (gro[i], 0 for a datagram that was not coalesced) into one datagram per
// buffer, in order. Datagrams beyond the capacity of bufs, sizes and srcs go to the stash. It
// returns how many buffers hold a datagram.
//
// It works from the last received datagram to the first: datagram j's pieces go to positions
// at or after j, and every position after j whose buffer still holds received data belongs to a
// later datagram, which has been moved out already.
func splitCoalesced(bufs [][]byte, sizes []int, srcs []netip.AddrPort, gro []int, got int, stash *groStash) int {
	capacity := min(len(bufs), len(sizes), len(srcs))
	// Datagrams [0, k) fit entirely; of datagram k the first part pieces fit.
	out, k := 0, 0
	for k < got && out+segments(sizes[k], gro[k]) <= capacity {
		out += segments(sizes[k], gro[k])
		k++
	}
	part := 0
	if k < got {
		part = capacity - out
		size := gro[k]
		if size <= 0 {
			size = sizes[k]
		}
		// Stash first: the in-place moves below overwrite the buffers of later datagrams.
		stash.add(bufs[k][min(part*size, sizes[k]):sizes[k]], gro[k], srcs[k])
		for j := k + 1; j < got; j++ {
			stash.add(bufs[j][:sizes[j]], gro[j], srcs[j])
		}
	}
	last := k
	if part > 0 {
		last = k + 1
	}
	pos := out + part // one past the last piece of datagram j
	for j := last - 1; j >= 0; j-- {
		n, size, src := sizes[j], gro[j], srcs[j]
		c := segments(n, size)
		if c == 1 {
			size = n
		}
		if j == k {
			c = part // fewer than its segments: the rest is stashed
		}
		pos -= c
		for s := c - 1; s >= 1; s-- { // pos+s > j: never datagram j's own buffer
			start := s * size
			sizes[pos+s] = copy(bufs[pos+s], bufs[j][start:min(start+size, n)])
			srcs[pos+s] = src
		}
		first := min(size, n)
		if pos != j {
			copy(bufs[pos], bufs[j][:first])
		}
		sizes[pos], srcs[pos] = first, src
	}
	return out + part
}
