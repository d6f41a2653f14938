package main

import (
	"github.com/nexodus-sdk/nexodus/api"
)

var orgTable = table[api.Organization]{
	header: []string{"ID", "NAME", "OWNER", "IPV4", "IPV6", "CREATED", "DESCRIPTION"},
	row: func(o api.Organization) []string {
		return []string{o.ID, o.Name, o.OwnerID, o.IPv4CIDR, o.IPv6CIDR, fmtTime(o.CreatedAt), o.Description}
	},
}

var memberTable = table[api.Member]{
	header: []string{"USER ID", "USERNAME", "ROLE", "JOINED"},
	row:    func(m api.Member) []string { return []string{m.UserID, m.Username, m.Role, fmtTime(m.JoinedAt)} },
}

func orgCreate(e *env, args []string) error {
	fs := e.flags()
	desc := fs.String("description", "", "free text")
	cidr := fs.String("cidr", "", "IPv4 CIDR of the organization (default: the next free block of the pool)")
	pos, err := e.parse(fs, args, 1)
	if err != nil {
		return err
	}
	o, err := e.c.CreateOrganization(e.ctx, api.CreateOrganizationRequest{Name: pos[0], Description: *desc, IPv4CIDR: *cidr})
	if err != nil {
		return err
	}
	return orgTable.one(e, o)
}

func memberList(e *env, orgID string) error {
	ms, err := e.c.ListMembers(e.ctx, orgID)
	if err != nil {
		return err
	}
	return memberTable.list(e, ms)
}

func memberRemove(e *env, args []string) error {
	pos, id, err := e.parseOrg(e.flags(), args, 1)
	if err != nil {
		return err
	}
	uid, err := e.memberID(id, pos[0])
	if err != nil {
		return err
	}
	if err := e.c.RemoveMember(e.ctx, id, uid); err != nil {
		return err
	}
	return e.done("member %s removed", pos[0])
}
