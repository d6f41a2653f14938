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
// An engine whose replicas share notifications and locks passes [Shared] too, and the suite
// also checks Watch and TryLock across two stores on one database (package store/postgres
// does, on a fresh database from package store/postgres/pgtest).
//
// Engine requirements the suite checks beyond the doc comments of package store:
//   - times read back Equal to what was written, to at least microsecond precision (the
//     fixtures use microseconds so that PostgreSQL's timestamptz can pass);
//   - nil and empty slices ([]Endpoint, []string, []byte) are interchangeable;
//   - an empty Device.TunnelIPv6 (or TunnelIPv4) means "no address" and takes part in no
//     uniqueness rule;
//   - a Create* that references a missing organization or user fails (ErrNotFound);
//   - Watch notifies after the commit of a transaction that appended events, and a
//     transaction that appended nothing, or rolled back, sends nothing synchronously;
//   - ListEvents with limit <= 0 has no limit;
//   - usernames and personal organizations' names are unique ignoring ASCII case, and
//     GetUserByUsername ignores ASCII case (but no other: "É" is not "é");
//   - a store opened by ReopenFunc while the first is still open is another replica on the
//     same database: revisions stay gap-free in commit order across replicas. With [Shared],
//     Watch also hears other replicas' commits and TryLock excludes other replicas.
package storetest

import (
	"testing"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// ReopenFunc opens another store on the same database as the store it was returned with. The
// suite calls it after closing that store, to check that data survives, and while that store
// is open, as another replica would open it (SQLite: a second Open of the same file).
type ReopenFunc func(t *testing.T) store.Store

// OpenFunc opens a store on a fresh, empty database and returns it with a way to reopen that
// database. The suite closes every store it gets; the engine may register t.Cleanup to drop
// the database afterwards.
type OpenFunc func(t *testing.T) (store.Store, ReopenFunc)

// Option tells the suite what an engine does beyond the minimum.
type Option func(*options)

type options struct {
	shared bool
}

// Shared declares an engine whose replicas share notifications and locks: Watch hears commits
// made through other stores on the same database, and TryLock excludes them.
func Shared() Option { return func(o *options) { o.shared = true } }

// Run runs the conformance suite as subtests of t.
func Run(t *testing.T, open OpenFunc, opts ...Option) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	h := &harness{open: open}
	tests := []testCase{
		{"Users", true, testUsers},
		{"UsernamesIgnoreCase", true, testUsernamesIgnoreCase},
		{"Tokens", false, testTokens},
		{"DeleteUser", false, testDeleteUser},
		{"Identities", false, testIdentities},
		{"Sessions", false, testSessions},
		{"LoginStates", false, testLoginStates},
		{"DeviceAuths", false, testDeviceAuths},
		{"PruneAuth", false, testPruneAuth},
		{"Organizations", false, testOrganizations},
		{"Members", false, testMembers},
		{"Invitations", false, testInvitations},
		{"RegKeys", false, testRegKeys},
		{"Devices", false, testDevices},
		{"DeviceAddressUniqueness", false, testDeviceAddressUniqueness},
		{"UpdateDevice", false, testUpdateDevice},
		{"DeviceAddresses", false, testDeviceAddresses},
		{"DeviceByHostname", false, testDeviceByHostname},
		{"OrganizationRevision", false, testOrganizationRevision},
		{"MissingReferences", false, testMissingReferences},
		{"DeleteOrganizationCascades", false, testDeleteOrganizationCascades},
		{"OrgRelays", false, testOrgRelays},
		{"ListOrgRelays", false, testListOrgRelays},
		{"Events", false, testEvents},
		{"PruneEvents", false, testPruneEvents},
		{"PruneEventsOverSize", false, testPruneEventsOverSize},
		{"Compact", false, testCompact},
		{"Rollback", false, testRollback},
		{"ContextCanceled", false, testContextCanceled},
		{"WatchWakeups", false, testWatchWakeups},
		{"WatchRollback", false, testWatchRollback},
		{"Signals", false, testSignals},
		{"PruneSignals", false, testPruneSignals},
		{"Presence", false, testPresence},
		{"ExpiredEphemeral", false, testExpiredEphemeral},
		{"View", false, testView},
		{"ViewNotBlockedByWriter", false, testViewNotBlockedByWriter},
		{"Watch", false, testWatch},
		{"WatchRollbackAndCancel", false, testWatchRollbackAndCancel},
		{"WatchOrder", false, testWatchOrder},
		{"TryLock", false, testTryLock},
		{"ConcurrentConflicts", false, testConcurrentConflicts},
		{"ConcurrentReadModifyWrite", false, testConcurrentReadModifyWrite},
		{"ConcurrentEvents", false, testConcurrentEvents},
		{"Replicas", false, testReplicas},
		{"Reopen", false, testReopen},
		{"Close", false, testClose},
	}
	if o.shared {
		tests = append(tests,
			testCase{"SharedWatch", false, testSharedWatch},
			testCase{"SharedTryLock", false, testSharedTryLock})
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

type testCase struct {
	name  string
	empty bool // starts from an empty store rather than the world fixture
	fn    func(t *testing.T, s store.Store, reopen ReopenFunc)
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
