package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/nexodus-sdk/nexodus/api"
)

var relaysTable = table[api.OrgRelays]{
	header: []string{"ORGANIZATION", "TURN", "STUN", "UPDATED"},
	row: func(r api.OrgRelays) []string {
		return []string{r.OrganizationID, strings.Join(r.TURN, ","), strings.Join(r.STUN, ","), fmtTime(r.UpdatedAt)}
	},
}

// relaySecret reads the relays' shared secret: never from a flag value, which would show in
// the process list and the shell's history.
func (e *env) relaySecret(file string) (string, error) {
	if file == "" {
		if s := e.getenv("NEXODUS_RELAY_SECRET"); s != "" {
			return s, nil
		}
		return "", usagef("no secret: pass --secret-file FILE or set NEXODUS_RELAY_SECRET")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	// Files written by editors and "echo" end in a newline that is not part of the secret.
	return string(bytes.TrimRight(b, "\r\n")), nil
}

func relaysSet(e *env, args []string) error {
	fs := e.flags()
	org := fs.String("org", "", orgUsage)
	turn := fs.String("turn", "", "comma-separated TURN URLs, e.g. turn:198.51.100.10:3478?transport=udp")
	stun := fs.String("stun", "", "comma-separated STUN servers, host:port")
	secretFile := fs.String("secret-file", "", "file holding the secret the relays share (default $NEXODUS_RELAY_SECRET)")
	if _, err := e.parse(fs, args, 0); err != nil {
		return err
	}
	if *turn == "" {
		return usagef("--turn is required")
	}
	secret, err := e.relaySecret(*secretFile)
	if err != nil {
		return err
	}
	id, err := e.orgID(*org)
	if err != nil {
		return err
	}
	r, err := e.c.SetOrgRelays(e.ctx, id, api.SetOrgRelaysRequest{TURN: splitList(*turn), STUN: splitList(*stun), Secret: secret})
	if err != nil {
		return err
	}
	return relaysTable.one(e, r)
}

func relaysGet(e *env, orgID string) error {
	r, err := e.c.GetOrgRelays(e.ctx, orgID)
	if err != nil {
		return err
	}
	return relaysTable.one(e, r)
}

func relaysClear(e *env, orgID string) error {
	if err := e.c.ClearOrgRelays(e.ctx, orgID); err != nil {
		return err
	}
	return e.done("relays of organization %s cleared; its devices use the coordinator's", orgID)
}

// splitList splits a comma-separated flag value, dropping empty entries.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
