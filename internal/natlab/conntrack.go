//go:build linux

// conntrack.go holds the flush of a namespace's conntrack table over ctnetlink, so that the lab
// needs no conntrack tool to make a NAT forget its mappings.

package natlab

import (
	"encoding/binary"
	"fmt"
	"syscall"
)

// ctnetlinkFlush deletes every IPv4 conntrack entry of the calling thread's namespace: an
// IPCTNL_MSG_CT_DELETE request without a tuple, which the kernel treats as a flush (what
// "conntrack -F" sends).
func ctnetlinkFlush() error {
	const (
		netlinkNetfilter    = 12 // NETLINK_NETFILTER
		nfnlSubsysCtnetlink = 1  // NFNL_SUBSYS_CTNETLINK
		ipctnlMsgCtDelete   = 2  // IPCTNL_MSG_CT_DELETE
	)
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, netlinkNetfilter)
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink bind: %w", err)
	}
	msg := make([]byte, syscall.NLMSG_HDRLEN+4)
	binary.NativeEndian.PutUint32(msg[0:4], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:6], nfnlSubsysCtnetlink<<8|ipctnlMsgCtDelete)
	binary.NativeEndian.PutUint16(msg[6:8], syscall.NLM_F_REQUEST|syscall.NLM_F_ACK)
	binary.NativeEndian.PutUint32(msg[8:12], 1) // seq
	msg[16] = syscall.AF_INET                   // nfgenmsg.nfgen_family; version 0, res_id 0
	if err := syscall.Sendto(fd, msg, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	buf := make([]byte, 8192)
	for {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			return fmt.Errorf("netlink receive: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("netlink parse: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Type != syscall.NLMSG_ERROR {
				continue
			}
			if len(m.Data) < 4 {
				return fmt.Errorf("netlink: short error message")
			}
			if errno := int32(binary.NativeEndian.Uint32(m.Data[:4])); errno != 0 {
				return fmt.Errorf("conntrack flush: %w", syscall.Errno(-errno))
			}
			return nil
		}
	}
}
