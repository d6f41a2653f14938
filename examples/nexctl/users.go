package main

import (
	"github.com/nexodus-sdk/nexodus/api"
)

func init() {
	resources["user"] = map[string]command{
		"create": {"USERNAME", "create a user and its personal organization (admin)", userCreate},
		"list":   {"", "list users (admin)", userList},
		"me":     {"", "show the user the token belongs to", userMe},
		"token":  {"USER [--description TEXT] [--expires 30d]", "issue an API token for a user, by ID or username (admin)", userToken},
	}
}

func userRows(us ...api.User) [][]string {
	rows := make([][]string, 0, len(us))
	for _, u := range us {
		rows = append(rows, []string{u.ID, u.Username, fmtTime(u.CreatedAt)})
	}
	return rows
}

var userHeader = []string{"ID", "USERNAME", "CREATED"}

func userCreate(e *env, args []string) error {
	pos, err := e.parse(e.flags(), args, 1)
	if err != nil {
		return err
	}
	resp, err := e.c.CreateUser(e.ctx, api.CreateUserRequest{Username: pos[0]})
	if err != nil {
		return err
	}
	return e.show(resp, []string{"ID", "USERNAME", "PERSONAL ORGANIZATION", "CREATED"},
		[][]string{{resp.User.ID, resp.User.Username, resp.PersonalOrganizationID, fmtTime(resp.User.CreatedAt)}})
}

func userList(e *env, args []string) error {
	if _, err := e.parse(e.flags(), args, 0); err != nil {
		return err
	}
	us, err := e.c.ListUsers(e.ctx)
	if err != nil {
		return err
	}
	return e.show(nonNil(us), userHeader, userRows(us...))
}

func userMe(e *env, args []string) error {
	if _, err := e.parse(e.flags(), args, 0); err != nil {
		return err
	}
	u, err := e.c.Me(e.ctx)
	if err != nil {
		return err
	}
	return e.show(u, userHeader, userRows(*u))
}

func userToken(e *env, args []string) error {
	fs := e.flags()
	desc := fs.String("description", "", "what the token is for")
	expires := fs.String("expires", "", "lifetime, e.g. 720h or 30d (default: no expiry)")
	pos, err := e.parse(fs, args, 1)
	if err != nil {
		return err
	}
	secs, err := seconds(*expires)
	if err != nil {
		return err
	}
	uid, err := e.userID(pos[0])
	if err != nil {
		return err
	}
	t, err := e.c.CreateToken(e.ctx, uid, api.CreateTokenRequest{Description: *desc, ExpiresInSeconds: secs})
	if err != nil {
		return err
	}
	e.note("The token's secret is shown only this once.")
	return e.show(t, []string{"ID", "USER", "EXPIRES", "SECRET"},
		[][]string{{t.ID, t.UserID, fmtTimePtr(t.ExpiresAt), t.Secret}})
}

// nonNil turns a nil list into an empty one, so -o json prints [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
