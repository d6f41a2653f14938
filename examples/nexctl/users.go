package main

import (
	"github.com/nexodus-sdk/nexodus/api"
)

var userTable = table[api.User]{
	header: []string{"ID", "USERNAME", "CREATED"},
	row:    func(u api.User) []string { return []string{u.ID, u.Username, fmtTime(u.CreatedAt)} },
}

var createdUserTable = table[api.CreateUserResponse]{
	header: []string{"ID", "USERNAME", "PERSONAL ORGANIZATION", "CREATED"},
	row: func(r api.CreateUserResponse) []string {
		return []string{r.User.ID, r.User.Username, r.PersonalOrganizationID, fmtTime(r.User.CreatedAt)}
	},
}

var tokenTable = table[api.Token]{
	header: []string{"ID", "USER", "EXPIRES", "SECRET"},
	row:    func(t api.Token) []string { return []string{t.ID, t.UserID, fmtTimePtr(t.ExpiresAt), t.Secret} },
}

func userCreate(e *env, args []string) error {
	pos, err := e.parse(e.flags(), args, 1)
	if err != nil {
		return err
	}
	resp, err := e.c.CreateUser(e.ctx, api.CreateUserRequest{Username: pos[0]})
	if err != nil {
		return err
	}
	return createdUserTable.one(e, resp)
}

func userMe(e *env, args []string) error {
	if _, err := e.parse(e.flags(), args, 0); err != nil {
		return err
	}
	u, err := e.c.Me(e.ctx)
	if err != nil {
		return err
	}
	return userTable.one(e, u)
}

func userToken(e *env, args []string) error {
	fs := e.flags()
	desc := fs.String("description", "", "what the token is for")
	secs := expiresFlag(fs, "lifetime, e.g. 720h or 30d (default: no expiry)")
	_, uid, err := e.parseOne(fs, args, (*env).userID)
	if err != nil {
		return err
	}
	t, err := e.c.CreateToken(e.ctx, uid, api.CreateTokenRequest{Description: *desc, ExpiresInSeconds: *secs})
	if err != nil {
		return err
	}
	e.note("The token's secret is shown only this once.")
	return tokenTable.one(e, t)
}
