package client

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine (an event stream's, a connection's) is
// still running after them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
