package main

import (
	"cmp"

	"github.com/nexodus-sdk/nexodus/api"
)

var inviteTable = table[api.Invitation]{
	header: []string{"ID", "ORGANIZATION", "USER", "ROLE", "STATUS", "EXPIRES"},
	row: func(i api.Invitation) []string {
		return []string{i.ID, cmp.Or(i.OrganizationName, i.OrganizationID), cmp.Or(i.Username, i.UserID), i.Role, i.Status, fmtTime(i.ExpiresAt)}
	},
}

func inviteCreate(e *env, args []string) error {
	fs := e.flags()
	org := fs.String("org", "", "organization ID or name (required)")
	role := fs.String("role", "", "role on acceptance: member (default) or owner")
	secs := expiresFlag(fs, "validity, e.g. 48h or 7d (default 7d)")
	pos, err := e.parse(fs, args, 1)
	if err != nil {
		return err
	}
	id, err := e.requiredOrgID(*org)
	if err != nil {
		return err
	}
	inv, err := e.c.CreateInvitation(e.ctx, api.CreateInvitationRequest{
		OrganizationID: id, Username: pos[0], Role: *role, ExpiresInSeconds: *secs,
	})
	if err != nil {
		return err
	}
	return inviteTable.one(e, inv)
}
