package storetest

// The records the tests write: fixed times, users, organizations, devices, relays, events,
// and the small populated world most tests start from.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// t0 has a non-UTC zone and sub-second digits, so engines must convert and keep precision.
var t0 = time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.FixedZone("UTC+5:30", 5*3600+1800))

func at(d time.Duration) time.Time { return t0.Add(d) }

func ptr[T any](v T) *T { return &v }

var errBoom = errors.New("boom")

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

func orgRelays(orgID string, n int) store.OrgRelays {
	return store.OrgRelays{
		OrganizationID: orgID,
		STUNServers:    []string{"stun.example.com:3478"},
		TURNServers:    []string{"turn:relay.example.com:3478?transport=udp", "turns:relay.example.com:5349?transport=tcp"},
		Secret:         []byte{byte(n), 0, 0xff, 'x'},
		UpdatedAt:      at(time.Duration(n) * time.Second),
	}
}

func appendEvent(ctx context.Context, tx store.Tx, org string) error {
	_, err := tx.AppendEvent(ctx, store.Event{OrganizationID: org, Type: "x", Data: []byte(`{}`), CreatedAt: t0})
	return err
}

// commitEvent appends an event to org's log in a transaction of its own.
func commitEvent(t *testing.T, s store.Store, org string) {
	t.Helper()
	do(t, s, func(ctx context.Context, tx store.Tx) error { return appendEvent(ctx, tx, org) })
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
