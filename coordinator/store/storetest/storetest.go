// Package storetest is the conformance suite every store.Store engine must pass. An engine's
// test calls [Run] with a function that opens a store on a fresh, empty database:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) (store.Store, storetest.ReopenFunc) {
//			path := filepath.Join(t.TempDir(), "test.db")
//			open := func(t *testing.T) store.Store {
//				s, err := sqlite.Open(context.Background(), path)
//				if err != nil {
//					t.Fatal(err)
//				}
//				return s
//			}
//			return open(t), open
//		})
//	}
//
// Engine requirements the suite checks beyond the doc comments of package store:
//   - times read back Equal to what was written, to at least microsecond precision (the
//     fixtures use microseconds so that PostgreSQL's timestamptz can pass);
//   - nil and empty slices ([]Endpoint, []string, []byte) are interchangeable;
//   - an empty Device.TunnelIPv6 (or TunnelIPv4) means "no address" and takes part in no
//     uniqueness rule;
//   - a Create* that references a missing organization or user fails (ErrNotFound);
//   - Subscribe notifies after the commit of a transaction that appended events, and a
//     transaction that appended nothing, or rolled back, sends nothing synchronously;
//   - ListEvents with limit <= 0 has no limit.
package storetest

import (
	"testing"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// ReopenFunc opens another store on the same database as the store it was returned with. The
// suite calls it after closing that store, to check that data survives.
type ReopenFunc func(t *testing.T) store.Store

// OpenFunc opens a store on a fresh, empty database and returns it with a way to reopen that
// database. The suite closes every store it gets; the engine may register t.Cleanup to drop
// the database afterwards.
type OpenFunc func(t *testing.T) (store.Store, ReopenFunc)

// Run runs the conformance suite as subtests of t.
func Run(t *testing.T, open OpenFunc) {
	h := &harness{open: open}
	tests := []struct {
		name  string
		empty bool // starts from an empty store rather than the world fixture
		fn    func(t *testing.T, s store.Store, reopen ReopenFunc)
	}{
		{"Users", true, testUsers},
		{"Tokens", false, testTokens},
		{"Organizations", false, testOrganizations},
		{"Members", false, testMembers},
		{"Invitations", false, testInvitations},
		{"RegKeys", false, testRegKeys},
		{"Devices", false, testDevices},
		{"DeviceAddressUniqueness", false, testDeviceAddressUniqueness},
		{"UpdateDevice", false, testUpdateDevice},
		{"MissingReferences", false, testMissingReferences},
		{"DeleteOrganizationCascades", false, testDeleteOrganizationCascades},
		{"OrgRelays", false, testOrgRelays},
		{"Events", false, testEvents},
		{"PruneEvents", false, testPruneEvents},
		{"Rollback", false, testRollback},
		{"ContextCanceled", false, testContextCanceled},
		{"Subscribe", false, testSubscribe},
		{"SubscribeRollback", false, testSubscribeRollback},
		{"ConcurrentConflicts", false, testConcurrentConflicts},
		{"ConcurrentReadModifyWrite", false, testConcurrentReadModifyWrite},
		{"ConcurrentEvents", false, testConcurrentEvents},
		{"Reopen", false, testReopen},
		{"Close", false, testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, reopen := h.new(t)
			if !tc.empty {
				world(t, s)
			}
			tc.fn(t, s, reopen)
		})
	}
}

type harness struct {
	open OpenFunc
}

// new opens a fresh store that is closed when the test ends.
func (h *harness) new(t *testing.T) (store.Store, ReopenFunc) {
	t.Helper()
	s, reopen := h.open(t)
	t.Cleanup(func() { _ = s.Close() }) // may already be closed by the test
	return s, func(t *testing.T) store.Store {
		t.Helper()
		s := reopen(t)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
}
