package coordinator

// Signing in through an OpenID provider in the browser: /login lists the providers,
// /login/{provider} starts the authorization-code flow (state, nonce and PKCE verifier stored
// so that any replica can finish it, the state also bound to this browser by a cookie),
// /auth/callback/{provider} finishes it once, and POST /logout ends the session.

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"unicode"

	"golang.org/x/oauth2"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// loginCookie binds a sign-in in progress to the browser that started it: the callback must
// come with it, so nobody can finish their own sign-in in someone else's browser (login CSRF).
const loginCookie = "nexodus-login"

// consoleHome is where a sign-in lands unless it was asked to return elsewhere.
const consoleHome = "/console"

// safeReturnTo keeps a return_to value only when it is a path on this site; anything else
// (another host, a scheme, "//host", a backslash that browsers read as a slash) is the console.
func safeReturnTo(s string) string {
	if s == "" || len(s) > 1024 || s[0] != '/' || strings.HasPrefix(s, "//") || strings.ContainsAny(s, "\\") {
		return consoleHome
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || unicode.IsSpace(r) {
			return consoleHome
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return consoleHome
	}
	return s
}

// callbackParams are what a provider sends back to the callback.
type callbackParams struct {
	State, Code, Error, ErrorDescription string
}

// parseCallback reads and bounds the callback's query.
func parseCallback(q url.Values) (callbackParams, error) {
	p := callbackParams{State: q.Get("state"), Code: q.Get("code"), Error: q.Get("error"), ErrorDescription: q.Get("error_description")}
	switch {
	case p.State == "" || len(p.State) > 256 || !printableASCII(p.State):
		return p, errorf(ErrBadRequest, "this sign-in link is incomplete: start the sign-in again")
	case len(p.Error) > 128 || !printableASCII(p.Error):
		return p, errorf(ErrBadRequest, "the provider's answer is malformed")
	case p.Error == "" && (p.Code == "" || len(p.Code) > 4096 || !printableASCII(p.Code)):
		return p, errorf(ErrBadRequest, "the provider's answer carries no authorization code")
	}
	p.ErrorDescription = truncate(strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, p.ErrorDescription), 300)
	return p, nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// handleLoginPage serves GET /login: a button per provider.
func (w *web) handleLoginPage(rw http.ResponseWriter, r *http.Request) {
	sess, ok, err := w.session(r)
	if err != nil {
		w.fail(rw, r, session{}, err)
		return
	}
	returnTo := safeReturnTo(r.URL.Query().Get("return_to"))
	if ok {
		http.Redirect(rw, r, returnTo, http.StatusSeeOther)
		return
	}
	type button struct{ Name, DisplayName, URL string }
	var buttons []button
	for _, p := range w.order {
		buttons = append(buttons, button{p.Name, p.DisplayName, "/login/" + p.Name + "?return_to=" + url.QueryEscape(returnTo)})
	}
	w.render(rw, r, sess, page{name: "login", title: "Sign in", data: buttons})
}

// handleStartLogin serves GET /login/{provider}: off to the provider.
func (w *web) handleStartLogin(rw http.ResponseWriter, r *http.Request) {
	p := w.providers[r.PathValue("provider")]
	if p == nil {
		w.fail(rw, r, session{}, errorf(ErrNotFound, "no such sign-in provider"))
		return
	}
	w.beginLogin(rw, r, p, safeReturnTo(r.URL.Query().Get("return_to")), "")
}

// beginLogin stores a new sign-in (for linkUserID's account when set) and redirects the
// browser to the provider.
func (w *web) beginLogin(rw http.ResponseWriter, r *http.Request, p *oidcProvider, returnTo, linkUserID string) {
	// Each source pays for the rows it makes; the shared limiter bounds them all together.
	if err := w.s.limitUnauthenticated(r); err != nil {
		w.fail(rw, r, session{}, err)
		return
	}
	if !w.limiter.Allow() {
		w.fail(rw, r, session{}, errorf(ErrUnavailable, "too many sign-ins are starting: try again in a minute"))
		return
	}
	ctx := r.Context()
	state, nonce, verifier := newSecret(), newSecret(), oauth2.GenerateVerifier()
	to, err := p.authURL(ctx, state, nonce, verifier)
	if err != nil {
		w.fail(rw, r, session{}, err)
		return
	}
	now := w.s.now()
	ls := store.LoginState{
		StateHash: hashSecret(state), Provider: p.Name, Nonce: nonce, Verifier: verifier, ReturnTo: returnTo,
		LinkUserID: linkUserID, ExpiresAt: now.Add(w.cfg.LoginTTL), CreatedAt: now,
	}
	if err := w.s.store.Tx(ctx, func(tx store.Tx) error { return tx.CreateLoginState(ctx, ls) }); err != nil {
		w.fail(rw, r, session{}, err)
		return
	}
	w.setCookie(rw, loginCookie, state, w.cfg.LoginTTL)
	http.Redirect(rw, r, to, http.StatusSeeOther)
}

var errLoginExpired = errorf(ErrUnauthorized, "this sign-in expired or was already used: start the sign-in again")

// handleCallback serves GET /auth/callback/{provider}: the provider's answer. The state is
// taken from the store (so a replayed answer finds nothing), checked against this browser's
// login cookie, its provider and expiry; the code is exchanged with the PKCE verifier and the
// ID token verified with the nonce; then the browser gets a fresh session.
func (w *web) handleCallback(rw http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := w.s.limitUnauthenticated(r); err != nil {
		w.fail(rw, r, session{}, err)
		return
	}
	p := w.providers[r.PathValue("provider")]
	if p == nil {
		w.fail(rw, r, session{}, errorf(ErrNotFound, "no such sign-in provider"))
		return
	}
	cb, err := parseCallback(r.URL.Query())
	if err != nil {
		w.fail(rw, r, session{}, err)
		return
	}
	ls, err := inTx(ctx, w.s.store, func(tx store.Tx) (store.LoginState, error) { return tx.TakeLoginState(ctx, hashSecret(cb.State)) })
	if errors.Is(err, store.ErrNotFound) {
		err = errLoginExpired
	}
	if err != nil {
		w.fail(rw, r, session{}, err)
		return
	}
	bound := false
	if c, cerr := r.Cookie(w.cookieName(loginCookie)); cerr == nil {
		bound = secretMatches(c.Value, ls.StateHash)
	}
	w.setCookie(rw, loginCookie, "", 0)
	switch {
	case !bound:
		err = errorf(ErrUnauthorized, "this sign-in was started in another browser: start it again here")
	case ls.Provider != p.Name:
		err = errorf(ErrBadRequest, "this answer came back for another provider than the sign-in started with")
	case !w.s.now().Before(ls.ExpiresAt):
		err = errLoginExpired
	case cb.Error != "":
		err = errorf(ErrForbidden, "%s did not sign you in: %s %s", p.DisplayName, cb.Error, cb.ErrorDescription)
	}
	if err != nil {
		w.fail(rw, r, session{}, err)
		return
	}
	claims, err := p.exchange(ctx, cb.Code, ls.Verifier, ls.Nonce)
	if err != nil {
		w.s.log.Warn("sign-in refused", "provider", p.Name, "err", err)
		w.fail(rw, r, session{}, err)
		return
	}
	prev, _, err := w.session(r)
	if err != nil {
		w.fail(rw, r, session{}, err)
		return
	}
	if ls.LinkUserID != "" && prev.UserID != ls.LinkUserID {
		w.fail(rw, r, session{}, errorf(ErrForbidden, "linking an account needs you to stay signed in as the user who asked for it"))
		return
	}
	in, err := w.s.signIn(ctx, p, claims, ls.LinkUserID)
	if err != nil {
		w.fail(rw, r, prev, err)
		return
	}
	if err := w.startSession(ctx, rw, prev, in.UserID); err != nil {
		w.fail(rw, r, session{}, err)
		return
	}
	to := safeReturnTo(ls.ReturnTo)
	if in.Linked {
		to = "/console/account"
	}
	http.Redirect(rw, r, to, http.StatusSeeOther)
}

// handleLogout serves POST /logout.
func (w *web) handleLogout(r *http.Request, sess session) (page, error) {
	return page{redirect: "/login", signOut: true}, nil
}

// handleLink serves POST /console/account/link/{provider}: the signed-in user confirms linking
// another provider's account to theirs and goes to sign in there.
func (w *web) handleLink(rw http.ResponseWriter, r *http.Request, sess session) {
	p := w.providers[r.PathValue("provider")]
	if p == nil {
		w.fail(rw, r, sess, errorf(ErrNotFound, "no such sign-in provider"))
		return
	}
	w.beginLogin(rw, r, p, "/console/account", sess.UserID)
}
