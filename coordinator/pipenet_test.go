package coordinator

import (
	"context"
	"fmt"
	"net"
	"sync"
)

// pipeNet is an in-memory network for one HTTP server: every dial of the client becomes a
// net.Pipe whose other end the server accepts. Unlike sockets it works inside synctest
// bubbles (a goroutine blocked on a pipe is durably blocked), and the deadlines http.Server
// sets on its connections follow the bubble's clock.
type pipeNet struct {
	conns  chan net.Conn
	done   chan struct{}
	mu     sync.Mutex
	closed bool
}

func newPipeNet() *pipeNet {
	return &pipeNet{conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept implements net.Listener.
func (n *pipeNet) Accept() (net.Conn, error) {
	select {
	case c := <-n.conns:
		return c, nil
	case <-n.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener: dials and accepts fail from now on. Calls after the first
// return an error wrapping net.ErrClosed.
func (n *pipeNet) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return fmt.Errorf("pipe network: %w", net.ErrClosed)
	}
	n.closed = true
	close(n.done)
	return nil
}

// Addr implements net.Listener.
func (n *pipeNet) Addr() net.Addr { return pipeAddr{} }

// DialContext is the client's dialer: the address does not matter, there is one server.
func (n *pipeNet) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case n.conns <- server:
		return client, nil
	case <-n.done:
		client.Close()
		server.Close()
		return nil, fmt.Errorf("dial: %w", net.ErrClosed)
	case <-ctx.Done():
		client.Close()
		server.Close()
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "coordinator" }
