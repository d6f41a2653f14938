package main

import (
	"github.com/nexodus-sdk/nexodus/api"
)

func init() {
	resources["org"] = map[string]command{
		"create": {"NAME [--description TEXT] [--cidr CIDR]", "create an organization you own", orgCreate},
		"list":   {"", "list your organizations", orgList},
		"get":    {"ORG", "show an organization, by ID or name", orgGet},
		"delete": {"ORG", "delete an organization you own", orgDelete},
	}
	resources["member"] = map[string]command{
		"list":   {"[--org ORG]", "list the members of an organization", memberList},
		"remove": {"USER [--org ORG]", "remove a member (owner), or leave an organization (yourself)", memberRemove},
	}
}

var orgHeader = []string{"ID", "NAME", "OWNER", "IPV4", "IPV6", "CREATED", "DESCRIPTION"}

func orgRows(os ...api.Organization) [][]string {
	rows := make([][]string, 0, len(os))
	for _, o := range os {
		rows = append(rows, []string{o.ID, o.Name, o.OwnerID, o.IPv4CIDR, o.IPv6CIDR, fmtTime(o.CreatedAt), o.Description})
	}
	return rows
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
	return e.show(o, orgHeader, orgRows(*o))
}

func orgList(e *env, args []string) error {
	if _, err := e.parse(e.flags(), args, 0); err != nil {
		return err
	}
	os, err := e.c.ListOrganizations(e.ctx)
	if err != nil {
		return err
	}
	return e.show(nonNil(os), orgHeader, orgRows(os...))
}

func orgGet(e *env, args []string) error {
	pos, err := e.parse(e.flags(), args, 1)
	if err != nil {
		return err
	}
	id, err := e.orgID(pos[0])
	if err != nil {
		return err
	}
	o, err := e.c.GetOrganization(e.ctx, id)
	if err != nil {
		return err
	}
	return e.show(o, orgHeader, orgRows(*o))
}

func orgDelete(e *env, args []string) error {
	pos, err := e.parse(e.flags(), args, 1)
	if err != nil {
		return err
	}
	id, err := e.orgID(pos[0])
	if err != nil {
		return err
	}
	if err := e.c.DeleteOrganization(e.ctx, id); err != nil {
		return err
	}
	return e.done("organization %s deleted", pos[0])
}

func memberList(e *env, args []string) error {
	fs := e.flags()
	org := fs.String("org", "", "organization ID or name (default: your personal organization)")
	if _, err := e.parse(fs, args, 0); err != nil {
		return err
	}
	id, err := e.orgID(*org)
	if err != nil {
		return err
	}
	ms, err := e.c.ListMembers(e.ctx, id)
	if err != nil {
		return err
	}
	rows := make([][]string, 0, len(ms))
	for _, m := range ms {
		rows = append(rows, []string{m.UserID, m.Username, m.Role, fmtTime(m.JoinedAt)})
	}
	return e.show(nonNil(ms), []string{"USER ID", "USERNAME", "ROLE", "JOINED"}, rows)
}

func memberRemove(e *env, args []string) error {
	fs := e.flags()
	org := fs.String("org", "", "organization ID or name (default: your personal organization)")
	pos, err := e.parse(fs, args, 1)
	if err != nil {
		return err
	}
	id, err := e.orgID(*org)
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
