// main_test.go holds the package's no-goroutine-leak guarantee for its tests.

package natt

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: Managers, agents, the mux,
// Monitors and Discover calls must all stop when closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
