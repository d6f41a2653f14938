//go:build linux

// netns.go holds how code of the test process runs inside a lab namespace: doInNetns, and the
// Host methods built on it that open sockets there.

package natlab

import (
	"context"
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
		return fmt.Errorf("setns syscall number unknown on %s", runtime.GOARCH)
	}
	f, err := os.Open(netnsDir + "/" + ns)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", ns, err)
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
			done <- result{err: fmt.Errorf("setns %s: %w", ns, e)}
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
// the namespace; goroutines started by fn do not run in it. Errors are fn's, or why the
// namespace could not be entered, wrapped as "natlab: host NAME: ...".
func (h *Host) Do(fn func() error) error {
	if err := doInNetns(h.ns, fn); err != nil {
		return fmt.Errorf("natlab: host %s: %w", h.name, err)
	}
	return nil
}

// inNetns returns what open, run on a thread inside the host's namespace, made: a socket that
// stays in the namespace.
func inNetns[T any](h *Host, open func() (T, error)) (T, error) {
	var v T
	err := h.Do(func() (err error) {
		v, err = open()
		return err
	})
	return v, err
}

// ListenPacket is net.ListenPacket inside the host's namespace, e.g. ("udp4", ":4500").
func (h *Host) ListenPacket(network, address string) (net.PacketConn, error) {
	return inNetns(h, func() (net.PacketConn, error) { return net.ListenPacket(network, address) })
}

// ListenUDP opens a UDP socket on the given local port (0 for any) inside the host's namespace.
func (h *Host) ListenUDP(port int) (*net.UDPConn, error) {
	return inNetns(h, func() (*net.UDPConn, error) { return net.ListenUDP("udp4", &net.UDPAddr{Port: port}) })
}

// Listen is net.Listen inside the host's namespace.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	return inNetns(h, func() (net.Listener, error) { return net.Listen(network, address) })
}

// Dial is net.Dialer.DialContext from inside the host's namespace.
func (h *Host) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	return inNetns(h, func() (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	})
}
