package coordinator

// The Close rule every closable type of the package follows (as os.File and net.Conn do): the
// first Close does the work, every later one answers an error wrapping net.ErrClosed.

import (
	"fmt"
	"net"
	"sync"
)

// closeOnce records whether its owner has been closed.
type closeOnce struct {
	mu     sync.Mutex
	closed bool
}

// close marks the owner closed; what names the owner in the error a second close gets.
func (c *closeOnce) close(what string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("%s: %w", what, net.ErrClosed)
	}
	c.closed = true
	return nil
}

// whileOpen runs fn unless the owner is closed, atomically with close, and reports whether it
// ran.
func (c *closeOnce) whileOpen(fn func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		fn()
	}
	return !c.closed
}
