package main

import (
	"github.com/nexodus-sdk/nexodus/api"
)

func init() {
	resources["invite"] = map[string]command{
		"create":  {"USERNAME --org ORG [--role member|owner] [--expires 7d]", "invite a user to an organization you own", inviteCreate},
		"list":    {"", "list invitations sent to you or by organizations you own", inviteList},
		"get":     {"ID", "show an invitation", inviteGet},
		"accept":  {"ID", "accept an invitation sent to you", inviteAnswer(true)},
		"decline": {"ID", "decline an invitation sent to you", inviteAnswer(false)},
		"revoke":  {"ID", "revoke an invitation of an organization you own", inviteRevoke},
	}
}

var inviteHeader = []string{"ID", "ORGANIZATION", "USER", "ROLE", "STATUS", "EXPIRES"}

func inviteRows(is ...api.Invitation) [][]string {
	rows := make([][]string, 0, len(is))
	for _, i := range is {
		org := i.OrganizationName
		if org == "" {
			org = i.OrganizationID
		}
		user := i.Username
		if user == "" {
			user = i.UserID
		}
		rows = append(rows, []string{i.ID, org, user, i.Role, i.Status, fmtTime(i.ExpiresAt)})
	}
	return rows
}

func inviteCreate(e *env, args []string) error {
	fs := e.flags()
	org := fs.String("org", "", "organization ID or name (required)")
	role := fs.String("role", "", "role on acceptance: member (default) or owner")
	expires := fs.String("expires", "", "validity, e.g. 48h or 7d (default 7d)")
	pos, err := e.parse(fs, args, 1)
	if err != nil {
		return err
	}
	if *org == "" {
		return usagef("--org is required")
	}
	secs, err := seconds(*expires)
	if err != nil {
		return err
	}
	id, err := e.orgID(*org)
	if err != nil {
		return err
	}
	inv, err := e.c.CreateInvitation(e.ctx, api.CreateInvitationRequest{
		OrganizationID: id, Username: pos[0], Role: *role, ExpiresInSeconds: secs,
	})
	if err != nil {
		return err
	}
	return e.show(inv, inviteHeader, inviteRows(*inv))
}

func inviteList(e *env, args []string) error {
	if _, err := e.parse(e.flags(), args, 0); err != nil {
		return err
	}
	is, err := e.c.ListInvitations(e.ctx)
	if err != nil {
		return err
	}
	return e.show(nonNil(is), inviteHeader, inviteRows(is...))
}

func inviteGet(e *env, args []string) error {
	pos, err := e.parse(e.flags(), args, 1)
	if err != nil {
		return err
	}
	inv, err := e.c.GetInvitation(e.ctx, pos[0])
	if err != nil {
		return err
	}
	return e.show(inv, inviteHeader, inviteRows(*inv))
}

func inviteAnswer(accept bool) func(e *env, args []string) error {
	return func(e *env, args []string) error {
		pos, err := e.parse(e.flags(), args, 1)
		if err != nil {
			return err
		}
		var inv *api.Invitation
		if accept {
			inv, err = e.c.AcceptInvitation(e.ctx, pos[0])
		} else {
			inv, err = e.c.DeclineInvitation(e.ctx, pos[0])
		}
		if err != nil {
			return err
		}
		return e.show(inv, inviteHeader, inviteRows(*inv))
	}
}

func inviteRevoke(e *env, args []string) error {
	pos, err := e.parse(e.flags(), args, 1)
	if err != nil {
		return err
	}
	if err := e.c.RevokeInvitation(e.ctx, pos[0]); err != nil {
		return err
	}
	return e.done("invitation %s revoked", pos[0])
}
