package main

import (
	"fmt"

	"github.com/nexodus-sdk/nexodus/api"
)

// pick returns the ID of the item whose ID is key or, failing that, whose name is key. When
// nothing matches it returns key itself and lets the coordinator answer "not found".
func pick[T any](items []T, key, kind string, id, name func(T) string) (string, error) {
	for _, it := range items {
		if id(it) == key {
			return key, nil
		}
	}
	var found []string
	for _, it := range items {
		if name(it) == key {
			found = append(found, id(it))
		}
	}
	switch len(found) {
	case 0:
		return key, nil
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%d %ss are named %q: use an ID (%v)", len(found), kind, key, found)
}

// orgID resolves an --org value (ID or name); empty means the caller's personal organization.
func (e *env) orgID(value string) (string, error) {
	orgs, err := e.c.ListOrganizations(e.ctx)
	if value == "" {
		if err != nil {
			return "", usagef("--org is required (cannot find your personal organization: %v)", err)
		}
		me, err := e.c.Me(e.ctx)
		if err != nil {
			return "", usagef("--org is required (cannot find your personal organization: %v)", err)
		}
		for _, o := range orgs {
			if o.Name == me.Username && o.OwnerID == me.ID {
				return o.ID, nil
			}
		}
		return "", usagef("--org is required (no personal organization found)")
	}
	if err != nil {
		return value, nil // maybe not a user token; let the coordinator judge the ID
	}
	return pick(orgs, value, "organization",
		func(o api.Organization) string { return o.ID }, func(o api.Organization) string { return o.Name })
}

// userID resolves a user ID or username through the admin's user list.
func (e *env) userID(value string) (string, error) {
	users, err := e.c.ListUsers(e.ctx)
	if err != nil {
		return value, nil
	}
	return pick(users, value, "user",
		func(u api.User) string { return u.ID }, func(u api.User) string { return u.Username })
}

// memberID resolves a user ID or username among an organization's members.
func (e *env) memberID(orgID, value string) (string, error) {
	ms, err := e.c.ListMembers(e.ctx, orgID)
	if err != nil {
		return value, nil
	}
	return pick(ms, value, "member",
		func(m api.Member) string { return m.UserID }, func(m api.Member) string { return m.Username })
}

// deviceID resolves a device ID or hostname among the caller's devices.
func (e *env) deviceID(value string) (string, error) {
	ds, err := e.c.ListDevices(e.ctx)
	if err != nil {
		return value, nil
	}
	return pick(ds, value, "device",
		func(d api.Device) string { return d.ID }, func(d api.Device) string { return d.Hostname })
}
