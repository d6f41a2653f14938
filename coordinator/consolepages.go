package coordinator

// The console's pages and forms. Each reads the request, calls the same domain functions the
// API routes call, as the session's user, and answers a page; forms that fail show their page
// again with the error.

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// homeView is the console's first page.
type homeView struct {
	Organizations []orgLink
	Invitations   []api.Invitation // pending, sent to the user
}

type orgLink struct {
	api.Organization
	Personal bool
}

func (w *web) homePage(r *http.Request, sess session) (page, error) {
	ctx, p := r.Context(), sess.principal()
	u, err := w.s.me(ctx, p)
	if err != nil {
		return page{}, err
	}
	orgs, err := w.s.listOrgs(ctx, p)
	if err != nil {
		return page{}, err
	}
	invs, err := w.s.listInvitations(ctx, p)
	if err != nil {
		return page{}, err
	}
	v := homeView{}
	for _, o := range orgs {
		v.Organizations = append(v.Organizations, orgLink{o, o.Name == u.Username && o.OwnerID == u.ID})
	}
	for _, inv := range invs {
		if inv.UserID == p.UserID && inv.Status == api.InvitationPending {
			v.Invitations = append(v.Invitations, inv)
		}
	}
	return page{name: "home", title: "Your organizations", data: v}, nil
}

// orgView is an organization's page.
type orgView struct {
	Org         api.Organization
	Owner       bool
	Devices     []api.Device
	Members     []api.Member
	RegKeys     []api.RegKey
	Invitations []api.Invitation // the organization's pending invitations (owners)
	NewKey      *api.RegKey      // just created: its secret is shown this once
	Expiries    []expiryChoice
}

// expiryChoice is an option of the console's expiry selects.
type expiryChoice struct {
	Value, Label string
}

var expiryChoices = []expiryChoice{
	{"0", "Never"}, {"3600", "1 hour"}, {"86400", "1 day"}, {"604800", "7 days"}, {"2592000", "30 days"}, {"7776000", "90 days"},
}

func (w *web) orgPage(r *http.Request, sess session) (page, error) {
	return w.orgPageWith(r.Context(), sess, r.PathValue("id"), nil)
}

// orgPageWith renders an organization's page, with a key just created or an error of a form.
func (w *web) orgPageWith(ctx context.Context, sess session, id string, newKey *api.RegKey) (page, error) {
	if err := checkID("organization id", id); err != nil {
		return page{}, err
	}
	p := sess.principal()
	o, err := w.s.getOrg(ctx, p, id)
	if err != nil {
		return page{}, err
	}
	v := orgView{Org: o, NewKey: newKey, Expiries: expiryChoices}
	if v.Devices, err = w.s.orgDevices(ctx, p, id); err != nil {
		return page{}, err
	}
	if v.Members, err = w.s.listMembers(ctx, p, id); err != nil {
		return page{}, err
	}
	i := slices.IndexFunc(v.Members, func(m api.Member) bool { return m.UserID == p.UserID })
	v.Owner = i >= 0 && v.Members[i].Role == api.RoleOwner
	if v.Owner {
		keys, err := w.s.listRegKeys(ctx, p)
		if err != nil {
			return page{}, err
		}
		v.RegKeys = slices.DeleteFunc(keys, func(k api.RegKey) bool { return k.OrganizationID != id })
		invs, err := w.s.listInvitations(ctx, p)
		if err != nil {
			return page{}, err
		}
		v.Invitations = slices.DeleteFunc(invs, func(inv api.Invitation) bool {
			return inv.OrganizationID != id || inv.Status != api.InvitationPending
		})
	}
	return page{name: "org", title: o.Name, data: v}, nil
}

// formErr shows the organization's page again with err, at err's status.
func (w *web) orgFormErr(ctx context.Context, sess session, id string, ferr error) (page, error) {
	pg, err := w.orgPageWith(ctx, sess, id, nil)
	if err != nil {
		return page{}, ferr
	}
	pg.err = ferr
	return pg, nil
}

// formSeconds reads an expiry select.
func formSeconds(r *http.Request, name string) (int64, error) {
	v := r.PostForm.Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, errorf(ErrBadRequest, "%s: want a number of seconds", name)
	}
	return n, nil
}

func (w *web) createRegKeyForm(r *http.Request, sess session) (page, error) {
	ctx, id := r.Context(), r.PathValue("id")
	secs, err := formSeconds(r, "expires")
	if err != nil {
		return w.orgFormErr(ctx, sess, id, err)
	}
	k, err := w.s.createRegKey(ctx, sess.principal(), api.CreateRegKeyRequest{
		OrganizationID: id, Description: r.PostForm.Get("description"),
		SingleUse: r.PostForm.Get("single_use") != "", Ephemeral: r.PostForm.Get("ephemeral") != "",
		ExpiresInSeconds: secs,
	})
	if err != nil {
		return w.orgFormErr(ctx, sess, id, err)
	}
	pg, err := w.orgPageWith(ctx, sess, id, &k)
	pg.notice = "Registration key created. Copy it now: it is shown only this once."
	pg.status = http.StatusCreated
	return pg, err
}

func (w *web) revokeRegKeyForm(r *http.Request, sess session) (page, error) {
	ctx, id, key := r.Context(), r.PathValue("id"), r.PathValue("key")
	if err := checkID("registration key id", key); err != nil {
		return w.orgFormErr(ctx, sess, id, err)
	}
	if _, err := w.s.deleteRegKey(ctx, sess.principal(), key); err != nil {
		return w.orgFormErr(ctx, sess, id, err)
	}
	pg, err := w.orgPageWith(ctx, sess, id, nil)
	pg.notice = "Registration key revoked. Devices registered with it stay."
	return pg, err
}

func (w *web) inviteForm(r *http.Request, sess session) (page, error) {
	ctx, id := r.Context(), r.PathValue("id")
	inv, err := w.s.createInvitation(ctx, sess.principal(), api.CreateInvitationRequest{
		OrganizationID: id, Username: r.PostForm.Get("username"), Role: r.PostForm.Get("role"),
	})
	if err != nil {
		return w.orgFormErr(ctx, sess, id, err)
	}
	pg, err := w.orgPageWith(ctx, sess, id, nil)
	pg.notice = "Invited " + inv.Username + ": they accept or decline in their console."
	return pg, err
}

func (w *web) answerInvitationForm(r *http.Request, sess session) (page, error) {
	ctx, id := r.Context(), r.PathValue("id")
	if err := checkID("invitation id", id); err != nil {
		return page{}, err
	}
	var accept bool
	switch r.PathValue("answer") {
	case "accept":
		accept = true
	case "decline":
	default:
		return page{}, errorf(ErrNotFound, "no such answer")
	}
	inv, err := w.s.answerInvitation(ctx, sess.principal(), id, accept)
	if err != nil {
		return page{}, err
	}
	if accept {
		return page{redirect: "/console/orgs/" + inv.OrganizationID}, nil
	}
	return page{redirect: consoleHome}, nil
}

// tokensView is the API tokens page.
type tokensView struct {
	Tokens   []api.Token
	NewToken *api.Token
	Expiries []expiryChoice
}

func (w *web) tokensPageWith(ctx context.Context, sess session, newTok *api.Token, ferr error) (page, error) {
	ts, err := w.s.listMyTokens(ctx, sess.principal())
	if err != nil {
		return page{}, err
	}
	return page{name: "tokens", title: "API tokens", data: tokensView{Tokens: ts, NewToken: newTok, Expiries: expiryChoices[1:]}, err: ferr}, nil
}

func (w *web) tokensPage(r *http.Request, sess session) (page, error) {
	return w.tokensPageWith(r.Context(), sess, nil, nil)
}

func (w *web) createTokenForm(r *http.Request, sess session) (page, error) {
	ctx := r.Context()
	secs, err := formSeconds(r, "expires")
	if err != nil {
		return w.tokensPageWith(ctx, sess, nil, err)
	}
	t, err := w.s.createMyToken(ctx, sess.principal(), api.CreateTokenRequest{Description: r.PostForm.Get("name"), ExpiresInSeconds: secs})
	if err != nil {
		return w.tokensPageWith(ctx, sess, nil, err)
	}
	pg, err := w.tokensPageWith(ctx, sess, &t, nil)
	pg.notice = "Token created. Copy it now: it is shown only this once."
	pg.status = http.StatusCreated
	return pg, err
}

func (w *web) revokeTokenForm(r *http.Request, sess session) (page, error) {
	ctx, id := r.Context(), r.PathValue("id")
	if err := checkID("token id", id); err != nil {
		return w.tokensPageWith(ctx, sess, nil, err)
	}
	if _, err := w.s.revokeMyToken(ctx, sess.principal(), id); err != nil {
		return w.tokensPageWith(ctx, sess, nil, err)
	}
	pg, err := w.tokensPageWith(ctx, sess, nil, nil)
	pg.notice = "Token revoked: it no longer works."
	return pg, err
}

// accountView is the account page: the providers the user signs in with, and the others they
// may link.
type accountView struct {
	Identities []identityView
	Linkable   []*oidcProvider
}

type identityView struct {
	Provider, Email string
	Since           time.Time
}

func (w *web) accountPage(r *http.Request, sess session) (page, error) {
	ctx := r.Context()
	ids, err := inTx(ctx, w.s.store, func(tx store.Tx) ([]store.Identity, error) { return tx.ListIdentitiesForUser(ctx, sess.UserID) })
	if err != nil {
		return page{}, err
	}
	v := accountView{}
	linked := map[string]bool{}
	for _, id := range ids {
		name := id.Issuer
		for _, p := range w.order {
			if p.Issuer == id.Issuer {
				name, linked[p.Name] = p.DisplayName, true
			}
		}
		v.Identities = append(v.Identities, identityView{Provider: name, Email: id.Email, Since: id.CreatedAt})
	}
	for _, p := range w.order {
		if !linked[p.Name] {
			v.Linkable = append(v.Linkable, p)
		}
	}
	return page{name: "account", title: "Your account", data: v}, nil
}

// deviceView is the device-login page: a code to enter, or one to confirm, or the outcome.
type deviceView struct {
	UserCode string
	Client   string
	Expires  time.Time
	Done     string // "approved" or "denied" once answered
}

func (w *web) devicePage(r *http.Request, sess session) (page, error) {
	code := r.URL.Query().Get("user_code")
	if code == "" {
		return page{name: "device", title: "Sign in a device", data: deviceView{}}, nil
	}
	d, err := w.s.lookupDeviceAuth(r.Context(), code)
	if err != nil {
		return page{name: "device", title: "Sign in a device", data: deviceView{}, err: err}, nil
	}
	return page{name: "device", title: "Sign in a device", data: deviceView{UserCode: d.UserCode, Client: d.ClientName, Expires: d.ExpiresAt}}, nil
}

func (w *web) deviceAnswerForm(r *http.Request, sess session) (page, error) {
	approve := r.PostForm.Get("answer") == "approve"
	d, err := w.s.answerDeviceAuth(r.Context(), sess.principal(), r.PostForm.Get("user_code"), approve)
	if err != nil {
		return page{name: "device", title: "Sign in a device", data: deviceView{}, err: err}, nil
	}
	v := deviceView{UserCode: d.UserCode, Client: d.ClientName, Done: d.Status}
	notice := "Denied: the device was not signed in."
	if approve {
		notice = "Approved: " + d.ClientName + " is signed in as you. You can close this page."
	}
	return page{name: "device", title: "Sign in a device", data: v, notice: notice}, nil
}
