package main

import (
	"cmp"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/nexodus-sdk/nexodus/api"
)

var deviceTable = table[api.Device]{
	header: []string{"ID", "HOSTNAME", "ORGANIZATION", "IPV4", "IPV6", "ONLINE", "ENDPOINTS"},
	row: func(d api.Device) []string {
		return []string{d.ID, d.Hostname, d.OrganizationID, d.TunnelIPv4, d.TunnelIPv6, yesNo(d.Online), endpoints(d.Endpoints)}
	},
}

func endpoints(eps []api.Endpoint) string {
	s := make([]string, len(eps))
	for i, ep := range eps {
		s[i] = ep.Address
	}
	return strings.Join(s, ",")
}

func deviceList(e *env, args []string) error {
	fs := e.flags()
	org := fs.String("org", "", "organization ID or name (default: all your organizations)")
	if _, err := e.parse(fs, args, 0); err != nil {
		return err
	}
	var ds []api.Device
	var err error
	if *org == "" {
		ds, err = e.c.ListDevices(e.ctx)
	} else {
		var id string
		if id, err = e.orgID(*org); err != nil {
			return err
		}
		ds, err = e.c.ListDevicesInOrganization(e.ctx, id)
	}
	if err != nil {
		return err
	}
	return deviceTable.list(e, ds)
}

func deviceGet(e *env, args []string) error {
	_, id, err := e.parseOne(e.flags(), args, (*env).deviceID)
	if err != nil {
		return err
	}
	d, err := e.c.GetDevice(e.ctx, id)
	if err != nil {
		return err
	}
	if e.g.output == "json" {
		return e.show(d, nil, nil)
	}
	// One device: a detailed, vertical view.
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"ID", d.ID},
		{"Hostname", d.Hostname},
		{"Organization", d.OrganizationID},
		{"Owner", d.OwnerID},
		{"Public key", d.PublicKey},
		{"Tunnel IPv4", d.TunnelIPv4},
		{"Tunnel IPv6", d.TunnelIPv6},
		{"Online", yesNo(d.Online)},
		{"Symmetric NAT", yesNo(d.SymmetricNAT)},
		{"Ephemeral", yesNo(d.Ephemeral)},
		{"Child prefixes", strings.Join(d.ChildPrefixes, ", ")},
		{"Created", fmtTime(d.CreatedAt)},
		{"Updated", fmtTime(d.UpdatedAt)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], cmp.Or(kv[1], "-"))
	}
	if len(d.Endpoints) == 0 {
		fmt.Fprintf(tw, "Endpoints:\t-\n")
	}
	for i, ep := range d.Endpoints {
		label := ""
		if i == 0 {
			label = "Endpoints:"
		}
		fmt.Fprintf(tw, "%s\t%s (%s)\n", label, ep.Address, ep.Source)
	}
	return tw.Flush()
}

func deviceMove(e *env, args []string) error {
	fs := e.flags()
	org := fs.String("org", "", "target organization ID or name (required)")
	pos, err := e.parse(fs, args, 1)
	if err != nil {
		return err
	}
	orgID, err := e.requiredOrgID(*org)
	if err != nil {
		return err
	}
	id, err := e.deviceID(pos[0])
	if err != nil {
		return err
	}
	d, err := e.c.UpdateDevice(e.ctx, id, api.UpdateDeviceRequest{OrganizationID: &orgID})
	if err != nil {
		return err
	}
	return deviceTable.one(e, d)
}
