// login.go signs nexctl in through the coordinator's device login (RFC 8628): the person
// approves a code in the web console, and nexctl keeps the API token it gets.

package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
)

// clientName is how the console names nexctl to the person approving a login.
const clientName = "nexctl"

func login(e *env, args []string) error {
	if _, err := e.parseAnon(e.flags(), args, 0); err != nil {
		return err
	}
	dl, err := e.c.StartDeviceLogin(e.ctx, clientName)
	if err != nil {
		return err
	}
	open := dl.VerificationURIComplete
	if open == "" {
		open = dl.VerificationURI
	}
	fmt.Fprintf(e.stderr, "To sign in, open this page in a browser:\n\n    %s\n\nand check that it shows the code %s (it expires at %s).\nWaiting for approval...\n",
		open, dl.UserCode, dl.ExpiresAt.Local().Format(time.Kitchen))
	tok, err := e.c.WaitDeviceLogin(e.ctx, dl)
	if err != nil {
		return err
	}
	me, err := e.c.WithToken(tok).Me(e.ctx)
	if err != nil {
		return err
	}
	path, err := saveToken(e.getenv, e.g.url, savedLogin{Token: tok, Username: me.Username, SavedAt: time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("signed in as %s, but saving the token failed: %w", me.Username, err)
	}
	if e.g.output == "json" {
		return userTable.one(e, me)
	}
	return e.done("Signed in to %s as %s. The token is saved in %s.", e.g.url, me.Username, path)
}

// logout revokes the saved token and forgets it.
func logout(e *env, args []string) error {
	if _, err := e.parseAnon(e.flags(), args, 0); err != nil {
		return err
	}
	tok, err := loadToken(e.getenv, e.g.url)
	if err != nil {
		return err
	}
	if tok == "" {
		return e.done("Not signed in to %s.", e.g.url)
	}
	if id, _, ok := strings.Cut(strings.TrimPrefix(tok, api.UserTokenPrefix), "."); ok && api.IsID(id) {
		if err := e.c.WithToken(tok).RevokeMyToken(e.ctx, id); err != nil {
			e.note("Could not revoke the token on the coordinator (%v); forgetting it anyway.", err)
		}
	}
	if _, err := saveToken(e.getenv, e.g.url, savedLogin{}); err != nil {
		return err
	}
	return e.done("Signed out of %s.", e.g.url)
}
