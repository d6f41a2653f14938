// resources.go holds the command table: every RESOURCE VERB of nexctl, what it takes and
// what runs it. The handlers are in the file of their resource.

package main

import "github.com/nexodus-sdk/nexodus/client"

// resources maps RESOURCE to VERB to command.
var resources = map[string]map[string]command{
	"user": {
		"create": {"USERNAME", "create a user and its personal organization (admin)", userCreate},
		"list":   {"", "list users (admin)", listCmd(userTable, (*client.Client).ListUsers)},
		"me":     {"", "show the user the token belongs to", userMe},
		"token":  {"USER [--description TEXT] [--expires 30d]", "issue an API token for a user, by ID or username (admin)", userToken},
		"delete": {"USER", "delete a user with their devices and personal organization (admin, or 'me')", userDelete},
	},
	"token": {
		"create": {"NAME [--expires 30d]", "create an API token of your own", tokenCreate},
		"list":   {"", "list your API tokens", tokenList},
		"revoke": {"ID", "revoke one of your API tokens; it stops working at once", tokenRevoke},
	},
	"login": {
		"": {"", "sign in through the coordinator's web console and save the token", login},
	},
	"logout": {
		"": {"", "revoke and forget the saved token", logout},
	},
	"org": {
		"create": {"NAME [--description TEXT] [--cidr CIDR]", "create an organization you own", orgCreate},
		"list":   {"", "list your organizations", listCmd(orgTable, (*client.Client).ListOrganizations)},
		"get":    {"ORG", "show an organization, by ID or name", oneCmd(orgTable, (*env).orgID, (*client.Client).GetOrganization)},
		"delete": {"ORG", "delete an organization you own", deleteCmd("organization %s deleted", (*env).orgID, (*client.Client).DeleteOrganization)},
	},
	"member": {
		"list":   {"[--org ORG]", "list the members of an organization", orgCmd(memberList)},
		"remove": {"USER [--org ORG]", "remove a member (owner), or leave an organization (yourself)", memberRemove},
		"role":   {"USER owner|member [--org ORG]", "make a member an owner, or an owner a member (owners)", memberRole},
	},
	"relays": {
		"set": {"--turn URL[,URL] [--stun HOST:PORT[,HOST:PORT]] [--secret-file FILE] [--org ORG]",
			"give an organization its own relays (owner); the secret comes from --secret-file or $NEXODUS_RELAY_SECRET", relaysSet},
		"get":   {"[--org ORG]", "show an organization's own relays (never the secret)", orgCmd(relaysGet)},
		"clear": {"[--org ORG]", "go back to the coordinator's relays (owner)", orgCmd(relaysClear)},
	},
	"invite": {
		"create":  {"USERNAME --org ORG [--role member|owner] [--expires 7d]", "invite a user to an organization you own", inviteCreate},
		"list":    {"", "list invitations sent to you or by organizations you own", listCmd(inviteTable, (*client.Client).ListInvitations)},
		"get":     {"ID", "show an invitation", oneCmd(inviteTable, asIs, (*client.Client).GetInvitation)},
		"accept":  {"ID", "accept an invitation sent to you", oneCmd(inviteTable, asIs, (*client.Client).AcceptInvitation)},
		"decline": {"ID", "decline an invitation sent to you", oneCmd(inviteTable, asIs, (*client.Client).DeclineInvitation)},
		"revoke":  {"ID", "revoke an invitation of an organization you own", deleteCmd("invitation %s revoked", asIs, (*client.Client).RevokeInvitation)},
	},
	"regkey": {
		"create": {"[--org ORG] [--description TEXT] [--single-use] [--ephemeral] [--expires 24h]", "create a registration key for devices", regkeyCreate},
		"list":   {"", "list the registration keys of organizations you own", listCmd(regkeyTable, (*client.Client).ListRegKeys)},
		"get":    {"ID", "show a registration key", oneCmd(regkeyTable, asIs, (*client.Client).GetRegKey)},
		"delete": {"ID", "delete a registration key", deleteCmd("registration key %s deleted", asIs, (*client.Client).DeleteRegKey)},
	},
	"device": {
		"list":   {"[--org ORG]", "list devices: of one organization, or of all yours", deviceList},
		"get":    {"DEVICE", "show a device, by ID or hostname", deviceGet},
		"delete": {"DEVICE", "delete a device", deleteCmd("device %s deleted", (*env).deviceID, (*client.Client).DeleteDevice)},
		"move":   {"DEVICE --org ORG", "move a device to another organization its owner belongs to", deviceMove},
	},
}

// resourceOrder is the order of the help text.
var resourceOrder = []string{"login", "logout", "user", "token", "org", "member", "relays", "invite", "regkey", "device"}

// aliases of resource names.
var aliases = map[string]string{
	"users": "user", "organization": "org", "organizations": "org", "orgs": "org",
	"members": "member", "invitation": "invite", "invitations": "invite", "invites": "invite",
	"reg-key": "regkey", "regkeys": "regkey", "reg-keys": "regkey", "devices": "device",
	"relay": "relays", "tokens": "token",
}
