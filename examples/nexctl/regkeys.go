package main

import (
	"github.com/nexodus-sdk/nexodus/api"
)

var regkeyTable = table[api.RegKey]{
	header: []string{"ID", "ORGANIZATION", "SINGLE USE", "EPHEMERAL", "USED", "EXPIRES", "DESCRIPTION"},
	row: func(k api.RegKey) []string {
		return []string{k.ID, k.OrganizationID, yesNo(k.SingleUse), yesNo(k.Ephemeral), yesNo(k.Used), fmtTimePtr(k.ExpiresAt), k.Description}
	},
}

func regkeyCreate(e *env, args []string) error {
	fs := e.flags()
	desc := fs.String("description", "", "what the key is for")
	single := fs.Bool("single-use", false, "the key registers one device only")
	ephemeral := fs.Bool("ephemeral", false, "devices registered with the key are deleted when they go away")
	secs := expiresFlag(fs, "lifetime, e.g. 24h or 7d (default: no expiry)")
	_, id, err := e.parseOrg(fs, args, 0)
	if err != nil {
		return err
	}
	k, err := e.c.CreateRegKey(e.ctx, api.CreateRegKeyRequest{
		OrganizationID: id, Description: *desc, SingleUse: *single, Ephemeral: *ephemeral, ExpiresInSeconds: *secs,
	})
	if err != nil {
		return err
	}
	e.note("The key's secret is shown only this once.")
	return regkeyTable.with("SECRET", func(k api.RegKey) string { return k.Secret }).one(e, k)
}
