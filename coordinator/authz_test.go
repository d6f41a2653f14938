package coordinator

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/nexodus-sdk/nexodus/api"
)

// world is a fresh set of users, organizations and devices for one authorization check.
//
//	alice: owner of org "acme" (and of her personal org)
//	bob:   member of acme
//	carol: outsider, with her own personal org, key and device
//	dave:  outsider with a pending invitation to acme
//	d1:    acme device registered with acme's key (owned by alice)
//	d2:    acme device registered by bob with his user token
//	x1:    device in carol's personal org
//
// acme and carol's personal org have relays of their own.
type world struct {
	alice, bob, carol, dave user
	acme                    api.Organization
	acmeKey, carolKey       api.RegKey
	d1, d2, x1              device
	inv                     api.Invitation
	creds                   map[string]string
}

// Principal columns of the matrix.
var principals = []string{"admin", "owner", "member", "outsider", "invitee", "regkey", "device", "otherdev"}

func (e *env) newWorld() *world {
	e.t.Helper()
	w := &world{}
	w.alice = e.newUser(e.uniq("alice"))
	w.bob = e.newUser(e.uniq("bob"))
	w.carol = e.newUser(e.uniq("carol"))
	w.dave = e.newUser(e.uniq("dave"))
	w.acme = e.newOrg(w.alice, e.uniq("acme"), "")
	e.invite(w.alice, w.bob, w.acme.ID, "")
	e.call("POST", "/api/v1/invitations", w.alice.Token, api.CreateInvitationRequest{OrganizationID: w.acme.ID, Username: w.dave.Name}, 201, &w.inv)
	w.acmeKey = e.newRegKey(w.alice, w.acme.ID, api.CreateRegKeyRequest{})
	w.carolKey = e.newRegKey(w.carol, w.carol.PersonalOrg, api.CreateRegKeyRequest{})
	w.d1 = e.register(w.acmeKey.Secret, "", "d1", newKey(e.t), 201)
	w.d2 = e.register(w.bob.Token, w.acme.ID, "d2", newKey(e.t), 201)
	w.x1 = e.register(w.carolKey.Secret, "", "x1", newKey(e.t), 201)
	e.call("PUT", "/api/v1/organizations/"+w.acme.ID+"/relays", w.alice.Token, orgRelaysReq(), 200, nil)
	e.call("PUT", "/api/v1/organizations/"+w.carol.PersonalOrg+"/relays", w.carol.Token, orgRelaysReq(), 200, nil)
	w.creds = map[string]string{
		"admin": adminToken, "owner": w.alice.Token, "member": w.bob.Token, "outsider": w.carol.Token,
		"invitee": w.dave.Token, "regkey": w.acmeKey.Secret, "device": w.d1.Token, "otherdev": w.x1.Token,
	}
	return w
}

type route struct {
	name   string
	method string
	path   func(w *world) string
	body   func(e *env, w *world) any
	sse    bool
	want   [8]int // per principals
}

func p(s string) func(*world) string { return func(*world) string { return s } }

var matrix = []route{
	{"create user", "POST", p("/users"), func(e *env, w *world) any { return api.CreateUserRequest{Username: e.uniq("newuser")} }, false,
		[8]int{201, 403, 403, 403, 403, 403, 403, 403}},
	{"list users", "GET", p("/users"), nil, false,
		[8]int{200, 403, 403, 403, 403, 403, 403, 403}},
	{"me", "GET", p("/users/me"), nil, false,
		[8]int{403, 200, 200, 200, 200, 403, 403, 403}},
	{"issue token", "POST", func(w *world) string { return "/users/" + w.bob.ID + "/tokens" }, nil, false,
		[8]int{201, 403, 403, 403, 403, 403, 403, 403}},
	{"create org", "POST", p("/organizations"), func(e *env, w *world) any { return api.CreateOrganizationRequest{Name: e.uniq("org")} }, false,
		[8]int{403, 201, 201, 201, 201, 403, 403, 403}},
	{"list orgs", "GET", p("/organizations"), nil, false,
		[8]int{403, 200, 200, 200, 200, 403, 403, 403}},
	{"get org", "GET", func(w *world) string { return "/organizations/" + w.acme.ID }, nil, false,
		[8]int{403, 200, 200, 404, 404, 403, 403, 403}},
	{"delete org", "DELETE", func(w *world) string { return "/organizations/" + w.acme.ID }, nil, false,
		[8]int{403, 204, 403, 404, 404, 403, 403, 403}},
	{"delete other org", "DELETE", func(w *world) string { return "/organizations/" + w.carol.PersonalOrg }, nil, false,
		[8]int{403, 404, 404, 403, 404, 403, 403, 403}},
	{"list members", "GET", func(w *world) string { return "/organizations/" + w.acme.ID + "/members" }, nil, false,
		[8]int{403, 200, 200, 404, 404, 403, 403, 403}},
	{"remove member bob", "DELETE", func(w *world) string { return "/organizations/" + w.acme.ID + "/members/" + w.bob.ID }, nil, false,
		[8]int{403, 204, 204, 404, 404, 403, 403, 403}},
	{"remove owner alice", "DELETE", func(w *world) string { return "/organizations/" + w.acme.ID + "/members/" + w.alice.ID }, nil, false,
		[8]int{403, 403, 403, 404, 404, 403, 403, 403}},
	{"remove non-member", "DELETE", func(w *world) string { return "/organizations/" + w.acme.ID + "/members/" + w.carol.ID }, nil, false,
		[8]int{403, 404, 403, 404, 404, 403, 403, 403}},
	{"peer list", "GET", func(w *world) string { return "/organizations/" + w.acme.ID + "/devices" }, nil, false,
		[8]int{403, 200, 200, 404, 404, 403, 200, 404}},
	{"org events", "GET", func(w *world) string { return "/organizations/" + w.acme.ID + "/events" }, nil, true,
		[8]int{403, 200, 200, 404, 404, 403, 403, 403}},
	{"set org relays", "PUT", func(w *world) string { return "/organizations/" + w.acme.ID + "/relays" }, func(e *env, w *world) any { return orgRelaysReq() }, false,
		[8]int{403, 200, 403, 404, 404, 403, 403, 403}},
	{"get org relays", "GET", func(w *world) string { return "/organizations/" + w.acme.ID + "/relays" }, nil, false,
		[8]int{403, 200, 200, 404, 404, 403, 403, 403}},
	{"clear org relays", "DELETE", func(w *world) string { return "/organizations/" + w.acme.ID + "/relays" }, nil, false,
		[8]int{403, 204, 403, 404, 404, 403, 403, 403}},
	{"set other org's relays", "PUT", func(w *world) string { return "/organizations/" + w.carol.PersonalOrg + "/relays" }, func(e *env, w *world) any { return orgRelaysReq() }, false,
		[8]int{403, 404, 404, 200, 404, 403, 403, 403}},
	{"get other org's relays", "GET", func(w *world) string { return "/organizations/" + w.carol.PersonalOrg + "/relays" }, nil, false,
		[8]int{403, 404, 404, 200, 404, 403, 403, 403}},
	{"clear other org's relays", "DELETE", func(w *world) string { return "/organizations/" + w.carol.PersonalOrg + "/relays" }, nil, false,
		[8]int{403, 404, 404, 204, 404, 403, 403, 403}},
	// The same reads of carol's organization: acme's principals see nothing of it.
	{"get carol's org", "GET", func(w *world) string { return "/organizations/" + w.carol.PersonalOrg }, nil, false,
		[8]int{403, 404, 404, 200, 404, 403, 403, 403}},
	{"list carol's members", "GET", func(w *world) string { return "/organizations/" + w.carol.PersonalOrg + "/members" }, nil, false,
		[8]int{403, 404, 404, 200, 404, 403, 403, 403}},
	{"carol's peer list", "GET", func(w *world) string { return "/organizations/" + w.carol.PersonalOrg + "/devices" }, nil, false,
		[8]int{403, 404, 404, 200, 404, 403, 404, 200}},
	{"carol's org events", "GET", func(w *world) string { return "/organizations/" + w.carol.PersonalOrg + "/events" }, nil, true,
		[8]int{403, 404, 404, 200, 404, 403, 403, 403}},
	{"create invitation", "POST", p("/invitations"), func(e *env, w *world) any {
		return api.CreateInvitationRequest{OrganizationID: w.acme.ID, Username: w.carol.Name}
	}, false,
		[8]int{403, 201, 403, 404, 404, 403, 403, 403}},
	// Cross-organization attempts through body fields.
	{"create invitation to carol's org", "POST", p("/invitations"), func(e *env, w *world) any {
		return api.CreateInvitationRequest{OrganizationID: w.carol.PersonalOrg, Username: w.bob.Name}
	}, false,
		[8]int{403, 404, 404, 201, 404, 403, 403, 403}},
	{"list invitations", "GET", p("/invitations"), nil, false,
		[8]int{403, 200, 200, 200, 200, 403, 403, 403}},
	{"get invitation", "GET", func(w *world) string { return "/invitations/" + w.inv.ID }, nil, false,
		[8]int{403, 200, 403, 404, 200, 403, 403, 403}},
	{"accept invitation", "POST", func(w *world) string { return "/invitations/" + w.inv.ID + "/accept" }, nil, false,
		[8]int{403, 403, 403, 404, 200, 403, 403, 403}},
	{"decline invitation", "POST", func(w *world) string { return "/invitations/" + w.inv.ID + "/decline" }, nil, false,
		[8]int{403, 403, 403, 404, 200, 403, 403, 403}},
	{"revoke invitation", "DELETE", func(w *world) string { return "/invitations/" + w.inv.ID }, nil, false,
		[8]int{403, 204, 403, 404, 403, 403, 403, 403}},
	{"create reg key", "POST", p("/reg-keys"), func(e *env, w *world) any { return api.CreateRegKeyRequest{OrganizationID: w.acme.ID} }, false,
		[8]int{403, 201, 403, 404, 404, 403, 403, 403}},
	{"create reg key for carol's org", "POST", p("/reg-keys"), func(e *env, w *world) any {
		return api.CreateRegKeyRequest{OrganizationID: w.carol.PersonalOrg}
	}, false,
		[8]int{403, 404, 404, 201, 404, 403, 403, 403}},
	{"list reg keys", "GET", p("/reg-keys"), nil, false,
		[8]int{403, 200, 200, 200, 200, 403, 403, 403}},
	{"get reg key", "GET", func(w *world) string { return "/reg-keys/" + w.acmeKey.ID }, nil, false,
		[8]int{403, 200, 403, 404, 404, 403, 403, 403}},
	{"get other org's reg key", "GET", func(w *world) string { return "/reg-keys/" + w.carolKey.ID }, nil, false,
		[8]int{403, 404, 404, 200, 404, 403, 403, 403}},
	{"delete reg key", "DELETE", func(w *world) string { return "/reg-keys/" + w.acmeKey.ID }, nil, false,
		[8]int{403, 204, 403, 404, 404, 403, 403, 403}},
	{"register device in acme", "POST", p("/devices"), func(e *env, w *world) any {
		return api.RegisterDeviceRequest{OrganizationID: w.acme.ID, PublicKey: newKey(e.t).Pub, Hostname: "new"}
	}, false,
		[8]int{403, 201, 201, 404, 404, 201, 403, 403}},
	{"register device in carol's org", "POST", p("/devices"), func(e *env, w *world) any {
		return api.RegisterDeviceRequest{OrganizationID: w.carol.PersonalOrg, PublicKey: newKey(e.t).Pub, Hostname: "new"}
	}, false,
		[8]int{403, 404, 404, 201, 404, 403, 403, 403}},
	// Re-registering a known public key: within the organization it answers the same device
	// (applied only for its owner bob, pending for everybody else); acme's key on carol's
	// device conflicts and changes nothing (reregister_test.go checks what each answer did,
	// and carol's key on acme's device).
	{"re-register d2", "POST", p("/devices"), func(e *env, w *world) any {
		return api.RegisterDeviceRequest{OrganizationID: w.acme.ID, PublicKey: w.d2.Key.Pub, Hostname: "d2"}
	}, false,
		[8]int{403, 200, 200, 404, 404, 200, 403, 403}},
	{"re-register x1 via acme", "POST", p("/devices"), func(e *env, w *world) any {
		return api.RegisterDeviceRequest{OrganizationID: w.acme.ID, PublicKey: w.x1.Key.Pub, Hostname: "x1"}
	}, false,
		[8]int{403, 409, 409, 404, 404, 409, 403, 403}},
	{"re-register x1 in carol's org", "POST", p("/devices"), func(e *env, w *world) any {
		return api.RegisterDeviceRequest{OrganizationID: w.carol.PersonalOrg, PublicKey: w.x1.Key.Pub, Hostname: "x1"}
	}, false,
		[8]int{403, 404, 404, 200, 404, 403, 403, 403}},
	{"list devices", "GET", p("/devices"), nil, false,
		[8]int{403, 200, 200, 200, 200, 403, 403, 403}},
	{"get device d1", "GET", func(w *world) string { return "/devices/" + w.d1.ID }, nil, false,
		[8]int{403, 200, 200, 404, 404, 403, 200, 404}},
	{"get device d2", "GET", func(w *world) string { return "/devices/" + w.d2.ID }, nil, false,
		[8]int{403, 200, 200, 404, 404, 403, 403, 404}},
	{"get device x1", "GET", func(w *world) string { return "/devices/" + w.x1.ID }, nil, false,
		[8]int{403, 404, 404, 200, 404, 403, 404, 200}},
	{"update device d1", "PATCH", func(w *world) string { return "/devices/" + w.d1.ID }, func(e *env, w *world) any {
		h := "renamed"
		return api.UpdateDeviceRequest{Hostname: &h}
	}, false,
		[8]int{403, 200, 403, 404, 404, 403, 200, 404}},
	{"update device d2", "PATCH", func(w *world) string { return "/devices/" + w.d2.ID }, func(e *env, w *world) any {
		h := "renamed"
		return api.UpdateDeviceRequest{Hostname: &h}
	}, false,
		[8]int{403, 403, 200, 404, 404, 403, 403, 404}},
	{"move device d1", "PATCH", func(w *world) string { return "/devices/" + w.d1.ID }, func(e *env, w *world) any {
		return api.UpdateDeviceRequest{OrganizationID: &w.alice.PersonalOrg}
	}, false,
		[8]int{403, 200, 403, 404, 404, 403, 403, 404}},
	{"move device d2", "PATCH", func(w *world) string { return "/devices/" + w.d2.ID }, func(e *env, w *world) any {
		return api.UpdateDeviceRequest{OrganizationID: &w.bob.PersonalOrg}
	}, false,
		[8]int{403, 403, 200, 404, 404, 403, 403, 404}},
	{"move device d1 into carol's org", "PATCH", func(w *world) string { return "/devices/" + w.d1.ID }, func(e *env, w *world) any {
		return api.UpdateDeviceRequest{OrganizationID: &w.carol.PersonalOrg}
	}, false,
		[8]int{403, 404, 403, 404, 404, 403, 403, 404}},
	{"move device x1 into acme", "PATCH", func(w *world) string { return "/devices/" + w.x1.ID }, func(e *env, w *world) any {
		return api.UpdateDeviceRequest{OrganizationID: &w.acme.ID}
	}, false,
		[8]int{403, 404, 404, 404, 404, 403, 404, 403}},
	{"delete device d1", "DELETE", func(w *world) string { return "/devices/" + w.d1.ID }, nil, false,
		[8]int{403, 204, 403, 404, 404, 403, 204, 404}},
	{"delete device d2", "DELETE", func(w *world) string { return "/devices/" + w.d2.ID }, nil, false,
		[8]int{403, 204, 204, 404, 404, 403, 403, 404}},
	{"relay config d1", "GET", func(w *world) string { return "/devices/" + w.d1.ID + "/relay" }, nil, false,
		[8]int{403, 403, 403, 403, 403, 403, 200, 404}},
	{"relay config x1", "GET", func(w *world) string { return "/devices/" + w.x1.ID + "/relay" }, nil, false,
		[8]int{403, 403, 403, 403, 403, 403, 404, 200}},
	{"device events d1", "GET", func(w *world) string { return "/devices/" + w.d1.ID + "/events" }, nil, true,
		[8]int{403, 403, 403, 403, 403, 403, 200, 404}},
	{"device events d2", "GET", func(w *world) string { return "/devices/" + w.d2.ID + "/events" }, nil, true,
		[8]int{403, 403, 403, 403, 403, 403, 403, 404}},
	{"signal d2", "POST", func(w *world) string { return "/devices/" + w.d2.ID + "/signal" }, func(e *env, w *world) any {
		return api.SignalRequest{Payload: []byte("offer")}
	}, false,
		[8]int{403, 403, 403, 403, 403, 403, 204, 404}},
	{"signal x1", "POST", func(w *world) string { return "/devices/" + w.x1.ID + "/signal" }, func(e *env, w *world) any {
		return api.SignalRequest{Payload: []byte("offer")}
	}, false,
		[8]int{403, 403, 403, 403, 403, 403, 404, 204}},
}

// TestAuthorizationMatrix tries every route as every kind of caller and asserts the exact
// status; after a request that changed state the next caller gets a fresh world. Unauthenticated and garbage credentials get 401 everywhere.
func TestAuthorizationMatrix(t *testing.T) {
	e := newEnv(t, lenientSources) // hundreds of bad credentials from one address, on purpose
	for _, rt := range matrix {
		t.Run(rt.name, func(t *testing.T) {
			e.t = t
			defer func() { e.t = nil }()
			// A world is reused until a request succeeds on a route that changes state.
			w := e.newWorld()
			status := func(cred string) int {
				var body any
				if rt.body != nil {
					body = rt.body(e, w)
				}
				return e.status(rt.method, api.Prefix+rt.path(w), cred, body, rt.sse)
			}
			for i, who := range principals {
				got := status(w.creds[who])
				assert.Equal(t, rt.want[i], got, "%s %s as %s", rt.method, rt.path(w), who)
				if got < 300 && rt.method != "GET" {
					w = e.newWorld()
				}
			}
			for _, cred := range []string{"", "garbage", "nxu_nope", api.UserTokenPrefix + w.alice.ID + ".secret", api.DeviceTokenPrefix + w.d1.ID + ".wrong", adminToken + "x"} {
				assert.Equal(t, 401, status(cred), "%s %s with credential %q", rt.method, rt.path(w), cred)
			}
		})
	}
}

// status sends a request and returns its status; event streams are closed once the status
// is known.
func (e *env) status(method, path, token string, body any, stream bool) int {
	e.t.Helper()
	if !stream {
		st, _ := e.do(method, path, token, body)
		return st
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := e.request(ctx, method, path, token, nil)
	resp.Body.Close()
	return resp.StatusCode
}

// TestListsShowOnlyOwnOrganizations: list routes answer 200 to everybody with a user token;
// what they list must never include another organization's organizations, devices, keys or
// invitations.
func TestListsShowOnlyOwnOrganizations(t *testing.T) {
	e := newEnv(t)
	w := e.newWorld()
	acmeIDs := []string{w.acme.ID, w.d1.ID, w.d2.ID, w.acmeKey.ID, w.inv.ID}
	carolIDs := []string{w.carol.PersonalOrg, w.x1.ID, w.carolKey.ID}
	lists := []string{"/organizations", "/devices", "/reg-keys", "/invitations"}
	check := func(who, token string, foreign []string, routes []string) {
		t.Helper()
		for _, route := range routes {
			st, body := e.do("GET", api.Prefix+route, token, nil)
			if !assert.Equal(t, 200, st, "GET %s as %s", route, who) {
				continue
			}
			for _, id := range foreign {
				assert.NotContains(t, string(body), id, "GET %s as %s lists %s of another organization", route, who, id)
			}
		}
	}
	check("outsider carol", w.carol.Token, acmeIDs, lists)
	check("owner alice", w.alice.Token, carolIDs, lists)
	check("member bob", w.bob.Token, carolIDs, lists)
	// Dave's invitation names acme, but nothing else of acme is his to see.
	check("invitee dave", w.dave.Token, slices.Concat(acmeIDs[1:4], carolIDs), lists)
	check("invitee dave", w.dave.Token, []string{w.acme.ID}, lists[:3])
	// The lists are not empty for those who may see: the check above is not vacuous.
	for _, c := range []struct{ token, route, id string }{
		{w.alice.Token, "/organizations", w.acme.ID}, {w.alice.Token, "/devices", w.d2.ID},
		{w.alice.Token, "/reg-keys", w.acmeKey.ID}, {w.alice.Token, "/invitations", w.inv.ID},
		{w.carol.Token, "/devices", w.x1.ID}, {w.carol.Token, "/reg-keys", w.carolKey.ID},
	} {
		_, body := e.do("GET", api.Prefix+c.route, c.token, nil)
		assert.Contains(t, string(body), c.id, "GET %s lists %s to those who may see it", c.route, c.id)
	}
}
