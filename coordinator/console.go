package coordinator

// The web console's plumbing: its routes, the templates and assets embedded in the binary
// (console/), the wrapper every page goes through (session required, forms size-limited and
// CSRF-checked, security headers), and rendering pages and errors. The pages themselves are
// in consolepages.go; sign-in in login.go; the device grant in deviceauth.go.

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/nexodus-sdk/nexodus/api"
)

//go:embed console/*.html console/*.css console/*.js
var consoleFS embed.FS

// web is the console: everything served to browsers and device clients outside /api/v1.
type web struct {
	s         *Server
	cfg       *ConsoleConfig
	secure    bool // served over https: Secure, __Host- cookies
	providers map[string]*oidcProvider
	order     []*oidcProvider
	pages     map[string]*template.Template
	static    http.Handler
	// limiter bounds how fast unauthenticated requests may make rows (sign-ins and device
	// codes started), so nobody fills the store.
	limiter *rate.Limiter
}

// maxFormBody bounds every console form.
const maxFormBody = 16 << 10

func newWeb(s *Server, cfg *ConsoleConfig) (*web, error) {
	w := &web{
		s: s, cfg: cfg, secure: strings.HasPrefix(cfg.ExternalURL, "https://"),
		providers: map[string]*oidcProvider{}, pages: map[string]*template.Template{},
		limiter: rate.NewLimiter(rate.Limit(20), 100),
	}
	for _, p := range cfg.Providers {
		op := newOIDCProvider(p, cfg.ExternalURL, cfg.HTTPClient, s.now)
		w.providers[p.Name] = op
		w.order = append(w.order, op)
	}
	funcs := template.FuncMap{
		"time": func(t time.Time) string {
			if t.IsZero() {
				return "never"
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
		"timePtr": func(t *time.Time) string {
			if t == nil {
				return "never"
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
	}
	layout, err := template.New("layout").Funcs(funcs).ParseFS(consoleFS, "console/layout.html")
	if err != nil {
		return nil, fmt.Errorf("coordinator: console templates: %w", err)
	}
	names, err := fs.Glob(consoleFS, "console/*.html")
	if err != nil {
		return nil, fmt.Errorf("coordinator: console templates: %w", err)
	}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "console/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := layout.Clone()
		if err == nil {
			t, err = t.ParseFS(consoleFS, n)
		}
		if err != nil {
			return nil, fmt.Errorf("coordinator: console template %s: %w", name, err)
		}
		w.pages[name] = t
	}
	sub, err := fs.Sub(consoleFS, "console")
	if err != nil {
		return nil, fmt.Errorf("coordinator: console assets: %w", err)
	}
	w.static = http.StripPrefix("/console/static/", http.FileServerFS(sub))
	return w, nil
}

// mount adds the console's routes to mux.
func (w *web) mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", func(rw http.ResponseWriter, r *http.Request) {
		http.Redirect(rw, r, consoleHome, http.StatusSeeOther)
	})
	mux.HandleFunc("GET /console/static/{file}", w.handleStatic)
	mux.HandleFunc("GET /login", w.handleLoginPage)
	mux.HandleFunc("GET /login/{provider}", w.handleStartLogin)
	mux.HandleFunc("GET /auth/callback/{provider}", w.handleCallback)
	mux.Handle("POST /logout", w.page(w.handleLogout))

	mux.Handle("GET /console", w.page(w.homePage))
	mux.Handle("GET /console/orgs/{id}", w.page(w.orgPage))
	mux.Handle("POST /console/orgs/{id}/reg-keys", w.page(w.createRegKeyForm))
	mux.Handle("POST /console/orgs/{id}/reg-keys/{key}/revoke", w.page(w.revokeRegKeyForm))
	mux.Handle("POST /console/orgs/{id}/invitations", w.page(w.inviteForm))
	mux.Handle("POST /console/invitations/{id}/{answer}", w.page(w.answerInvitationForm))
	mux.Handle("GET /console/tokens", w.page(w.tokensPage))
	mux.Handle("POST /console/tokens", w.page(w.createTokenForm))
	mux.Handle("POST /console/tokens/{id}/revoke", w.page(w.revokeTokenForm))
	mux.Handle("GET /console/account", w.page(w.accountPage))
	mux.Handle("POST /console/account/link/{provider}", w.withSession(w.handleLink))

	mux.Handle("GET "+api.DeviceVerificationPath, w.page(w.devicePage))
	mux.Handle("POST "+api.DeviceVerificationPath, w.page(w.deviceAnswerForm))
	mux.HandleFunc("POST "+api.DeviceAuthorizationPath, w.handleDeviceCode)
	mux.HandleFunc("POST "+api.TokenPath, w.handleToken)
}

// page is what a console handler answers: a template to render with its data, or a redirect
// (after a form that changed something).
type page struct {
	name, title string
	data        any
	status      int
	notice      string
	err         error // shown on the page, which is rendered with the error's status
	redirect    string
	signOut     bool
}

// pageData is what every template gets.
type pageData struct {
	Title  string
	User   *api.User
	CSRF   string
	Notice string
	Error  string
	Page   any
}

// withSession wraps h: without a valid session a GET goes to sign in (and comes back), other
// methods are refused; a POST's form is size-limited, parsed and its CSRF token checked.
func (w *web) withSession(h func(rw http.ResponseWriter, r *http.Request, sess session)) http.Handler {
	protect := http.NewCrossOriginProtection() // defense in depth beside the CSRF token
	return protect.Handler(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		sess, ok, err := w.session(r)
		if err != nil {
			w.fail(rw, r, session{}, err)
			return
		}
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(rw, r, "/login?return_to="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			w.fail(rw, r, session{}, errorf(ErrUnauthorized, "you are not signed in (or your session ended): sign in and try again"))
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(rw, r.Body, maxFormBody)
			if err := r.ParseForm(); err != nil {
				w.fail(rw, r, sess, errorf(ErrBadRequest, "cannot read the form"))
				return
			}
			if err := sess.checkCSRF(r); err != nil {
				w.fail(rw, r, sess, err)
				return
			}
		}
		h(rw, r, sess)
	}))
}

// page wraps a handler that answers a page.
func (w *web) page(fn func(r *http.Request, sess session) (page, error)) http.Handler {
	return w.withSession(func(rw http.ResponseWriter, r *http.Request, sess session) {
		pg, err := fn(r, sess)
		switch {
		case err != nil:
			w.fail(rw, r, sess, err)
		case pg.signOut:
			if err := w.endSession(r.Context(), rw, sess); err != nil {
				w.fail(rw, r, sess, err)
				return
			}
			http.Redirect(rw, r, pg.redirect, http.StatusSeeOther)
		case pg.redirect != "":
			http.Redirect(rw, r, pg.redirect, http.StatusSeeOther)
		default:
			w.render(rw, r, sess, pg)
		}
	})
}

// fail renders an error page with the error's status (5xx details go to the log only).
func (w *web) fail(rw http.ResponseWriter, r *http.Request, sess session, err error) {
	w.render(rw, r, sess, page{name: "error", title: "Something went wrong", err: err})
}

// render writes a page with the console's security headers.
func (w *web) render(rw http.ResponseWriter, r *http.Request, sess session, pg page) {
	d := pageData{Title: pg.title, Notice: pg.notice, Page: pg.data}
	status := pg.status
	if status == 0 {
		status = http.StatusOK
	}
	if pg.err != nil {
		st, body := statusOf(pg.err)
		status, d.Error = st, body.Message
		switch {
		case st >= 500 && st != statusClientClosedRequest:
			w.s.log.Error("console request failed", "method", r.Method, "path", r.URL.Path, "status", st, "err", pg.err)
		default:
			w.s.log.Debug("console request refused", "method", r.Method, "path", r.URL.Path, "status", st, "err", pg.err)
		}
	}
	if sess.ID != "" {
		d.CSRF = sess.csrfToken()
		if u, err := w.s.me(r.Context(), sess.principal()); err == nil {
			d.User = &u
		}
	}
	t := w.pages[pg.name]
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", d); err != nil {
		w.s.log.Error("console template failed", "page", pg.name, "err", err)
		http.Error(rw, "internal error", http.StatusInternalServerError)
		return
	}
	setPageHeaders(rw.Header())
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	rw.WriteHeader(status)
	_, _ = rw.Write(buf.Bytes())
}

// setPageHeaders keeps pages out of frames and caches and lets them load only their own
// scripts and styles.
func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self' https: http:; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

func (w *web) handleStatic(rw http.ResponseWriter, r *http.Request) {
	switch f := r.PathValue("file"); {
	case strings.HasSuffix(f, ".css"), strings.HasSuffix(f, ".js"):
	default:
		http.NotFound(rw, r)
		return
	}
	rw.Header().Set("X-Content-Type-Options", "nosniff")
	rw.Header().Set("Cache-Control", "public, max-age=3600")
	w.static.ServeHTTP(rw, r)
}
