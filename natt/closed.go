// closed.go holds the package's one Close rule: every Close is idempotent, and the second and
// later calls return an error wrapping net.ErrClosed, as the standard library's connections do.

package natt

import (
	"fmt"
	"net"
	"sync"
)

// errClosed is the error of a second Close (and of use after Close) of the thing named what.
func errClosed(what string) error { return fmt.Errorf("natt: %s: %w", what, net.ErrClosed) }

// closeOnce closes done the first time it is called with once, and returns errClosed(what)
// every other time.
func closeOnce(once *sync.Once, done chan struct{}, what string) error {
	err := errClosed(what)
	once.Do(func() {
		close(done)
		err = nil
	})
	return err
}
