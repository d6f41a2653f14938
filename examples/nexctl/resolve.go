package main

import (
	"fmt"

	"github.com/nexodus-sdk/nexodus/api"
)

// pick returns a resolver of key among the items a list call returned: the ID of the item
// whose ID is key or, failing that, whose name is key. When the list could not be read (the
// caller may not list them) or key looks like an ID, it returns key itself and lets the
// coordinator answer; a name that matches nothing is "no user named alice".
func pick[T any](key, kind string, idName func(T) (id, name string)) func([]T, error) (string, error) {
	return func(items []T, err error) (string, error) {
		if err != nil {
			return key, nil
		}
		var found []string
		for _, it := range items {
			id, name := idName(it)
			if id == key {
				return key, nil
			}
			if name == key {
				found = append(found, id)
			}
		}
		switch len(found) {
		case 0:
			if api.IsID(key) {
				return key, nil
			}
			return "", fmt.Errorf("no %s named %q", kind, key)
		case 1:
			return found[0], nil
		}
		return "", fmt.Errorf("%d %ss are named %q: use an ID (%v)", len(found), kind, key, found)
	}
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
	return pick(value, "organization", func(o api.Organization) (string, string) { return o.ID, o.Name })(orgs, err)
}

// userID resolves a user ID or username through the admin's user list.
func (e *env) userID(value string) (string, error) {
	return pick(value, "user", func(u api.User) (string, string) { return u.ID, u.Username })(e.c.ListUsers(e.ctx))
}

// memberID resolves a user ID or username among an organization's members.
func (e *env) memberID(orgID, value string) (string, error) {
	return pick(value, "member", func(m api.Member) (string, string) { return m.UserID, m.Username })(e.c.ListMembers(e.ctx, orgID))
}

// deviceID resolves a device ID or hostname among the caller's devices.
func (e *env) deviceID(value string) (string, error) {
	return pick(value, "device", func(d api.Device) (string, string) { return d.ID, d.Hostname })(e.c.ListDevices(e.ctx))
}
