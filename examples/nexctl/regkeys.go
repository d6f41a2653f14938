package main

import (
	"github.com/nexodus-sdk/nexodus/api"
)

func init() {
	resources["regkey"] = map[string]command{
		"create": {"[--org ORG] [--description TEXT] [--single-use] [--ephemeral] [--expires 24h]", "create a registration key for devices", regkeyCreate},
		"list":   {"", "list the registration keys of organizations you own", regkeyList},
		"get":    {"ID", "show a registration key", regkeyGet},
		"delete": {"ID", "delete a registration key", regkeyDelete},
	}
}

var regkeyHeader = []string{"ID", "ORGANIZATION", "SINGLE USE", "EPHEMERAL", "USED", "EXPIRES", "DESCRIPTION"}

func regkeyRows(ks ...api.RegKey) [][]string {
	rows := make([][]string, 0, len(ks))
	for _, k := range ks {
		rows = append(rows, []string{k.ID, k.OrganizationID, yesNo(k.SingleUse), yesNo(k.Ephemeral), yesNo(k.Used),
			fmtTimePtr(k.ExpiresAt), k.Description})
	}
	return rows
}

func regkeyCreate(e *env, args []string) error {
	fs := e.flags()
	org := fs.String("org", "", "organization ID or name (default: your personal organization)")
	desc := fs.String("description", "", "what the key is for")
	single := fs.Bool("single-use", false, "the key registers one device only")
	ephemeral := fs.Bool("ephemeral", false, "devices registered with the key are deleted when they go away")
	expires := fs.String("expires", "", "lifetime, e.g. 24h or 7d (default: no expiry)")
	if _, err := e.parse(fs, args, 0); err != nil {
		return err
	}
	secs, err := seconds(*expires)
	if err != nil {
		return err
	}
	id, err := e.orgID(*org)
	if err != nil {
		return err
	}
	k, err := e.c.CreateRegKey(e.ctx, api.CreateRegKeyRequest{
		OrganizationID: id, Description: *desc, SingleUse: *single, Ephemeral: *ephemeral, ExpiresInSeconds: secs,
	})
	if err != nil {
		return err
	}
	e.note("The key's secret is shown only this once.")
	return e.show(k, append(regkeyHeader[:len(regkeyHeader):len(regkeyHeader)], "SECRET"),
		[][]string{append(regkeyRows(*k)[0], k.Secret)})
}

func regkeyList(e *env, args []string) error {
	if _, err := e.parse(e.flags(), args, 0); err != nil {
		return err
	}
	ks, err := e.c.ListRegKeys(e.ctx)
	if err != nil {
		return err
	}
	return e.show(nonNil(ks), regkeyHeader, regkeyRows(ks...))
}

func regkeyGet(e *env, args []string) error {
	pos, err := e.parse(e.flags(), args, 1)
	if err != nil {
		return err
	}
	k, err := e.c.GetRegKey(e.ctx, pos[0])
	if err != nil {
		return err
	}
	return e.show(k, regkeyHeader, regkeyRows(*k))
}

func regkeyDelete(e *env, args []string) error {
	pos, err := e.parse(e.flags(), args, 1)
	if err != nil {
		return err
	}
	if err := e.c.DeleteRegKey(e.ctx, pos[0]); err != nil {
		return err
	}
	return e.done("registration key %s deleted", pos[0])
}
