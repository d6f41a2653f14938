//go:build linux

package natlab

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"
)

// doInNetns runs fn on an OS thread that has joined namespace ns. The thread stays locked and
// is discarded when fn returns, so no other goroutine ever runs in the lab's namespace by
// accident. Sockets fn creates belong to ns for their whole life and may be used anywhere.
// Goroutines fn starts do not run in ns.
func doInNetns(ns string, fn func() error) error {
	if sysSetns == 0 {
		return fmt.Errorf("natlab: setns syscall number unknown on %s", runtime.GOARCH)
	}
	f, err := os.Open(netnsDir + "/" + ns)
	if err != nil {
		return fmt.Errorf("natlab: open namespace %s: %w", ns, err)
	}
	defer f.Close()
	type result struct {
		err      error
		panicked bool
		val      any
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the runtime ends the thread with the goroutine
		if _, _, e := syscall.RawSyscall(sysSetns, f.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
			done <- result{err: fmt.Errorf("natlab: setns %s: %w", ns, e)}
			return
		}
		defer func() {
			if v := recover(); v != nil {
				done <- result{panicked: true, val: v}
			}
		}()
		done <- result{err: fn()}
	}()
	r := <-done
	if r.panicked {
		panic(r.val)
	}
	return r.err
}

// Do runs fn on a thread inside the host's network namespace. Sockets created by fn stay in
// the namespace; goroutines started by fn do not run in it.
func (h *Host) Do(fn func() error) error { return doInNetns(h.ns, fn) }

// ListenPacket is net.ListenPacket inside the host's namespace, e.g. ("udp4", ":4500").
func (h *Host) ListenPacket(network, address string) (net.PacketConn, error) {
	var c net.PacketConn
	err := h.Do(func() (err error) {
		c, err = net.ListenPacket(network, address)
		return err
	})
	return c, err
}

// ListenUDP opens a UDP socket on the given local port (0 for any) inside the host's namespace.
func (h *Host) ListenUDP(port int) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := h.Do(func() (err error) {
		c, err = net.ListenUDP("udp4", &net.UDPAddr{Port: port})
		return err
	})
	return c, err
}

// Listen is net.Listen inside the host's namespace.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	var l net.Listener
	err := h.Do(func() (err error) {
		l, err = net.Listen(network, address)
		return err
	})
	return l, err
}

// Dial is net.Dialer.DialContext from inside the host's namespace.
func (h *Host) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

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
