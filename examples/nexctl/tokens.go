// tokens.go holds the commands of a user's own API tokens, deleting users and members' roles.

package main

import (
	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
)

var myTokenTable = table[api.Token]{
	header: []string{"ID", "NAME", "CREATED", "EXPIRES"},
	row: func(t api.Token) []string {
		return []string{t.ID, t.Description, fmtTime(t.CreatedAt), fmtTimePtr(t.ExpiresAt)}
	},
}

func tokenCreate(e *env, args []string) error {
	fs := e.flags()
	secs := expiresFlag(fs, "lifetime, e.g. 720h or 30d (default: no expiry)")
	pos, err := e.parse(fs, args, 1)
	if err != nil {
		return err
	}
	t, err := e.c.CreateMyToken(e.ctx, api.CreateTokenRequest{Description: pos[0], ExpiresInSeconds: *secs})
	if err != nil {
		return err
	}
	e.note("The token's secret is shown only this once.")
	return myTokenTable.with("SECRET", func(t api.Token) string { return t.Secret }).one(e, t)
}

var tokenList = listCmd(myTokenTable, (*client.Client).ListMyTokens)

var tokenRevoke = deleteCmd("token %s revoked", asIs, (*client.Client).RevokeMyToken)

// userDelete deletes a user: the admin any user, a user themself ("me").
func userDelete(e *env, args []string) error {
	arg, id, err := e.parseOne(e.flags(), args, func(e *env, v string) (string, error) {
		if v == "me" {
			me, err := e.c.Me(e.ctx)
			if err != nil {
				return "", err
			}
			return me.ID, nil
		}
		return e.userID(v)
	})
	if err != nil {
		return err
	}
	if err := e.c.DeleteUser(e.ctx, id); err != nil {
		return err
	}
	return e.done("user %s deleted", arg)
}

func memberRole(e *env, args []string) error {
	pos, orgID, err := e.parseOrg(e.flags(), args, 2)
	if err != nil {
		return err
	}
	role := pos[1]
	if role != api.RoleOwner && role != api.RoleMember {
		return usagef("role must be owner or member, not %q", role)
	}
	uid, err := e.memberID(orgID, pos[0])
	if err != nil {
		return err
	}
	m, err := e.c.SetMemberRole(e.ctx, orgID, uid, role)
	if err != nil {
		return err
	}
	return memberTable.one(e, m)
}
