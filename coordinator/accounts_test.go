package coordinator

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/internal/oidctest"
)

func TestSelfServiceTokens(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.newUser("alice"), e.newUser("bob")
	e.fails(400, api.CodeBadRequest, "POST", "/api/v1/users/me/tokens", alice.Token, api.CreateTokenRequest{})
	e.fails(403, api.CodeForbidden, "POST", "/api/v1/users/me/tokens", adminToken, api.CreateTokenRequest{Description: "x"})

	var tok api.Token
	e.call("POST", "/api/v1/users/me/tokens", alice.Token, api.CreateTokenRequest{Description: "ci", ExpiresInSeconds: 3600}, 201, &tok)
	require.NotEmpty(t, tok.Secret)
	require.NotNil(t, tok.ExpiresAt)
	var me api.User
	e.call("GET", "/api/v1/users/me", tok.Secret, nil, 200, &me)
	assert.Equal(t, alice.ID, me.ID)

	var ts []api.Token
	e.call("GET", "/api/v1/users/me/tokens", alice.Token, nil, 200, &ts)
	require.Len(t, ts, 2)
	for _, x := range ts {
		assert.Empty(t, x.Secret, "lists never carry secrets")
		assert.Equal(t, alice.ID, x.UserID)
	}

	// Nobody else sees or revokes it.
	e.fails(404, api.CodeNotFound, "DELETE", "/api/v1/users/me/tokens/"+tok.ID, bob.Token, nil)
	e.call("GET", "/api/v1/users/me/tokens", bob.Token, nil, 200, &ts)
	assert.Len(t, ts, 1)

	// Revoking takes effect at once.
	e.call("DELETE", "/api/v1/users/me/tokens/"+tok.ID, tok.Secret, nil, 204, nil)
	e.fails(401, api.CodeUnauthorized, "GET", "/api/v1/users/me", tok.Secret, nil)
	e.fails(404, api.CodeNotFound, "DELETE", "/api/v1/users/me/tokens/"+tok.ID, alice.Token, nil)
	e.call("GET", "/api/v1/users/me", alice.Token, nil, 200, &me)
}

func TestSetMemberRole(t *testing.T) {
	e := newEnv(t)
	alice, bob, carol := e.newUser("alice"), e.newUser("bob"), e.newUser("carol")
	acme := e.newOrg(alice, "acme", "")
	e.invite(alice, bob, acme.ID, "")
	e.invite(alice, carol, acme.ID, "")
	path := func(u user) string { return "/api/v1/organizations/" + acme.ID + "/members/" + u.ID }

	e.fails(403, api.CodeForbidden, "PATCH", path(carol), bob.Token, api.SetMemberRoleRequest{Role: api.RoleOwner})
	var m api.Member
	e.call("PATCH", path(bob), alice.Token, api.SetMemberRoleRequest{Role: api.RoleOwner}, 200, &m)
	assert.Equal(t, api.RoleOwner, m.Role)
	assert.Equal(t, "bob", m.Username)
	// Now an owner, bob may change roles, but not demote the creator.
	e.call("PATCH", path(carol), bob.Token, api.SetMemberRoleRequest{Role: api.RoleOwner}, 200, &m)
	e.fails(403, api.CodeForbidden, "PATCH", path(alice), bob.Token, api.SetMemberRoleRequest{Role: api.RoleMember})
	e.call("PATCH", path(carol), bob.Token, api.SetMemberRoleRequest{Role: api.RoleMember}, 200, &m)
	assert.Equal(t, api.RoleMember, m.Role)

	e.fails(400, api.CodeBadRequest, "PATCH", path(carol), alice.Token, api.SetMemberRoleRequest{Role: "admin"})
	dave := e.newUser("dave")
	e.fails(404, api.CodeNotFound, "PATCH", path(dave), alice.Token, api.SetMemberRoleRequest{Role: api.RoleOwner})
	e.fails(404, api.CodeNotFound, "PATCH", path(carol), dave.Token, api.SetMemberRoleRequest{Role: api.RoleOwner})
}

func TestDeleteUser(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.newUser("alice"), e.newUser("bob")
	acme := e.newOrg(alice, "acme", "")
	e.invite(alice, bob, acme.ID, "")
	solo := e.newOrg(bob, "solo", "")
	// bob's devices: one in his personal organization, one in acme, one in solo.
	e.register(bob.Token, bob.PersonalOrg, "b-home", newKey(t), 201)
	inAcme := e.register(bob.Token, acme.ID, "b-acme", newKey(t), 201)
	e.register(bob.Token, solo.ID, "b-solo", newKey(t), 201)
	aliceDev := e.register(alice.Token, acme.ID, "a-acme", newKey(t), 201)
	key := e.newRegKey(bob, solo.ID, api.CreateRegKeyRequest{})

	// Only the admin and bob himself may delete bob; to anyone else he is not there.
	e.fails(404, api.CodeNotFound, "DELETE", "/api/v1/users/"+bob.ID, alice.Token, nil)
	e.fails(403, api.CodeForbidden, "DELETE", "/api/v1/users/"+bob.ID, key.Secret, nil)

	// alice created acme, which bob belongs to: she cannot go first.
	st, b := e.do("DELETE", "/api/v1/users/"+alice.ID, adminToken, nil)
	assert.Equal(t, 409, st)
	assert.Contains(t, string(b), "only owner of acme")

	e.call("DELETE", "/api/v1/users/"+bob.ID, bob.Token, nil, 204, nil)
	e.fails(401, api.CodeUnauthorized, "GET", "/api/v1/users/me", bob.Token, nil)
	e.fails(401, api.CodeUnauthorized, "GET", "/api/v1/devices/"+inAcme.ID, inAcme.Token, nil)
	var ds []api.Device
	e.call("GET", "/api/v1/organizations/"+acme.ID+"/devices", alice.Token, nil, 200, &ds)
	require.Len(t, ds, 1, "bob's device in acme went with him")
	assert.Equal(t, aliceDev.ID, ds[0].ID)
	var ms []api.Member
	e.call("GET", "/api/v1/organizations/"+acme.ID+"/members", alice.Token, nil, 200, &ms)
	assert.Len(t, ms, 1)
	var us []api.User
	e.call("GET", "/api/v1/users", adminToken, nil, 200, &us)
	assert.Len(t, us, 1)
	e.fails(401, api.CodeUnauthorized, "POST", "/api/v1/devices", key.Secret, api.RegisterDeviceRequest{PublicKey: newKey(t).Pub, Hostname: "x"})

	// Now alice's acme has no other member: she may go, and a user named bob may come back.
	e.call("DELETE", "/api/v1/users/"+alice.ID, adminToken, nil, 204, nil)
	e.newUser("bob")
}

// A user who created an organization another owner shares can be deleted: the organization
// passes to that owner, with its other members and devices.
func TestDeleteUserHandsOverCoOwnedOrganization(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.newUser("alice"), e.newUser("bob")
	acme := e.newOrg(alice, "acme", "")
	e.invite(alice, bob, acme.ID, "")
	bobDev := e.register(bob.Token, acme.ID, "b-acme", newKey(t), 201)
	e.call("PATCH", "/api/v1/organizations/"+acme.ID+"/members/"+bob.ID, alice.Token, api.SetMemberRoleRequest{Role: api.RoleOwner}, 200, nil)

	e.call("DELETE", "/api/v1/users/"+alice.ID, alice.Token, nil, 204, nil)
	var org api.Organization
	e.call("GET", "/api/v1/organizations/"+acme.ID, bob.Token, nil, 200, &org)
	assert.Equal(t, bob.ID, org.OwnerID, "acme passed to its other owner")
	var ms []api.Member
	e.call("GET", "/api/v1/organizations/"+acme.ID+"/members", bob.Token, nil, 200, &ms)
	require.Len(t, ms, 1)
	assert.Equal(t, bob.ID, ms[0].UserID)
	e.call("GET", "/api/v1/devices/"+bobDev.ID, bob.Token, nil, 200, nil)
}

// TestLinkProvider signs bob up with one provider and links a second to the same user; the
// second provider's account then signs in as bob, and cannot be linked to anyone else.
func TestLinkProvider(t *testing.T) {
	other := []oidctest.User{{ID: "gl-bob", Username: "bob-gitlab", Password: "pw", Email: "bob@gitlab.example", EmailVerified: true}}
	var second *oidctest.Provider
	e := newWebEnv(t, func(c *ConsoleConfig) {
		second = oidctest.New(t, []oidctest.Client{{ID: "nx2", Secret: "s2", RedirectURIs: []string{c.ExternalURL + "/auth/callback/second"}}}, other...)
		c.Providers = append(c.Providers, OIDCProvider{Name: "second", DisplayName: "Second", Issuer: second.URL, ClientID: "nx2", ClientSecret: "s2"})
	})
	b, _ := e.signIn("bob")
	st, page := e.get(b, "/console/account")
	require.Equal(t, http.StatusOK, st)
	assert.Contains(t, page, "Link Second")
	// Linking is a form of the signed-in user: without its CSRF token it does not start.
	st, _ = e.post(b, "/console/account/link/second", url.Values{})
	assert.Equal(t, http.StatusForbidden, st)

	resp, err := b.PostForm(e.url+"/console/account/link/second", url.Values{csrfField: {e.csrf(page)}})
	require.NoError(t, err)
	resp.Body.Close()
	authID := resp.Request.URL.Query().Get("authRequestID")
	require.NotEmpty(t, authID, "the link form leads to the second provider's login: %s", resp.Request.URL)
	resp, err = second.SubmitLogin(t.Context(), b, authID, "bob-gitlab", "pw")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "/console/account", resp.Request.URL.Path)
	_, page = e.get(b, "/console/account")
	assert.Contains(t, page, "bob@gitlab.example")
	assert.NotContains(t, page, "Link Second")

	// The second provider's account now signs in as bob.
	nb := e.client(true)
	resp, err = second.SignIn(t.Context(), nb, e.url+"/login/second", "bob-gitlab", "pw")
	require.NoError(t, err)
	resp.Body.Close()
	_, page = e.get(nb, "/console")
	assert.Contains(t, page, "Account (bob)")
	assert.Len(t, e.users(), 1)

	// alice cannot link bob's second account to herself.
	ab, _ := e.signIn("alice")
	_, page = e.get(ab, "/console/account")
	resp, err = ab.PostForm(e.url+"/console/account/link/second", url.Values{csrfField: {e.csrf(page)}})
	require.NoError(t, err)
	resp.Body.Close()
	resp, err = second.SubmitLogin(t.Context(), ab, resp.Request.URL.Query().Get("authRequestID"), "bob-gitlab", "pw")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusConflict, resp.StatusCode)
}
