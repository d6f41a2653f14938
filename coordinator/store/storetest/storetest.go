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
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

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
		name string
		fn   func(*testing.T, *harness)
	}{
		{"Users", testUsers},
		{"Tokens", testTokens},
		{"Organizations", testOrganizations},
		{"Members", testMembers},
		{"Invitations", testInvitations},
		{"RegKeys", testRegKeys},
		{"Devices", testDevices},
		{"DeviceAddressUniqueness", testDeviceAddressUniqueness},
		{"UpdateDevice", testUpdateDevice},
		{"MissingReferences", testMissingReferences},
		{"DeleteOrganizationCascades", testDeleteOrganizationCascades},
		{"OrgRelays", testOrgRelays},
		{"Events", testEvents},
		{"PruneEvents", testPruneEvents},
		{"Rollback", testRollback},
		{"ContextCanceled", testContextCanceled},
		{"Subscribe", testSubscribe},
		{"SubscribeRollback", testSubscribeRollback},
		{"ConcurrentConflicts", testConcurrentConflicts},
		{"ConcurrentReadModifyWrite", testConcurrentReadModifyWrite},
		{"ConcurrentEvents", testConcurrentEvents},
		{"Reopen", testReopen},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
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

// ---- helpers ----

// t0 has a non-UTC zone and sub-second digits, so engines must convert and keep precision.
var t0 = time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.FixedZone("UTC+5:30", 5*3600+1800))

func at(d time.Duration) time.Time { return t0.Add(d) }

func ptr[T any](v T) *T { return &v }

// do runs fn in a transaction and fails the test on error.
func do(t *testing.T, s store.Store, fn func(ctx context.Context, tx store.Tx) error) {
	t.Helper()
	ctx := context.Background()
	if err := s.Tx(ctx, func(tx store.Tx) error { return fn(ctx, tx) }); err != nil {
		t.Fatalf("Tx: %v", err)
	}
}

// try runs fn in a transaction and returns its error.
func try(s store.Store, fn func(ctx context.Context, tx store.Tx) error) error {
	ctx := context.Background()
	return s.Tx(ctx, func(tx store.Tx) error { return fn(ctx, tx) })
}

// read runs a single read in its own transaction and fails the test on error.
func read[T any](t *testing.T, s store.Store, fn func(ctx context.Context, tx store.Tx) (T, error)) T {
	t.Helper()
	var v T
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		v, err = fn(ctx, tx)
		return err
	})
	return v
}

// wantErr checks that err matches target and carries some context beyond the bare sentinel.
func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
	if err == target {
		t.Errorf("%s: error %q is the bare sentinel; want it wrapped with context", what, err)
	}
}

// wantErrTx runs fn in a transaction and checks its error.
func wantErrTx(t *testing.T, s store.Store, target error, what string, fn func(ctx context.Context, tx store.Tx) error) {
	t.Helper()
	wantErr(t, try(s, fn), target, what)
}

// equal compares records after normalizing what engines may legitimately change: time zones
// and monotonic readings (compared with time.Equal semantics) and nil versus empty slices.
func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	g, w := normalize(got), normalize(want)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, g, w)
	}
}

var timeType = reflect.TypeOf(time.Time{})

func normalize(v any) any {
	if v == nil {
		return nil
	}
	rv := reflect.New(reflect.TypeOf(v)).Elem()
	rv.Set(reflect.ValueOf(v))
	normValue(rv)
	return rv.Interface()
}

func normValue(v reflect.Value) {
	if v.Type() == timeType {
		v.Set(reflect.ValueOf(v.Interface().(time.Time).UTC().Round(0)))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				normValue(v.Field(i))
			}
		}
	case reflect.Pointer:
		if !v.IsNil() {
			c := reflect.New(v.Type().Elem())
			c.Elem().Set(v.Elem())
			normValue(c.Elem())
			v.Set(c)
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(c, v)
		for i := 0; i < c.Len(); i++ {
			normValue(c.Index(i))
		}
		v.Set(c)
	}
}

// ids returns the IDs of records, for order checks.
func ids[T any](items []T, id func(T) string) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, id(it))
	}
	return out
}

func equalIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: got IDs %q, want %q", what, got, want)
	}
}

// ---- fixtures ----

func user(id string, created time.Time) store.User {
	return store.User{ID: id, Username: "name-" + id, CreatedAt: created}
}

func org(id, owner string, n int) store.Organization {
	return store.Organization{
		ID:          id,
		Name:        "org-" + id,
		Description: "the " + id + " organization",
		OwnerID:     owner,
		IPv4CIDR:    fmt.Sprintf("100.64.%d.0/24", n),
		IPv6CIDR:    fmt.Sprintf("fd00:%x::/64", n),
		CreatedAt:   at(time.Duration(n) * time.Minute),
	}
}

func device(id, orgID, owner string, n int) store.Device {
	return store.Device{
		ID:             id,
		OrganizationID: orgID,
		OwnerID:        owner,
		PublicKey:      "pk-" + id,
		Hostname:       "host-" + id,
		TunnelIPv4:     fmt.Sprintf("100.64.0.%d", n),
		TunnelIPv6:     fmt.Sprintf("fd00::%x", n),
		Endpoints:      []store.Endpoint{{Source: "local", Address: fmt.Sprintf("192.168.1.%d:51820", n)}},
		TokenID:        "tok-" + id,
		TokenHash:      []byte{byte(n), 0, 0xff},
		LastSeenAt:     at(time.Duration(n) * time.Second),
		CreatedAt:      at(time.Duration(n) * time.Second),
		UpdatedAt:      at(time.Duration(n) * time.Second),
	}
}

// world is a small populated database: users u1..u3, organizations o1 (owner u1, member u2)
// and o2 (owner u2), each owner a member with role owner.
func world(t *testing.T, s store.Store) {
	t.Helper()
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		for i, id := range []string{"u1", "u2", "u3"} {
			if err := tx.CreateUser(ctx, user(id, at(time.Duration(i)*time.Second))); err != nil {
				return err
			}
		}
		if err := tx.CreateOrganization(ctx, org("o1", "u1", 1)); err != nil {
			return err
		}
		if err := tx.CreateOrganization(ctx, org("o2", "u2", 2)); err != nil {
			return err
		}
		for _, m := range []store.Membership{
			{OrganizationID: "o1", UserID: "u1", Role: "owner", JoinedAt: at(time.Second)},
			{OrganizationID: "o1", UserID: "u2", Role: "member", JoinedAt: at(2 * time.Second)},
			{OrganizationID: "o2", UserID: "u2", Role: "owner", JoinedAt: at(time.Second)},
		} {
			if err := tx.AddMember(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
}
