package coordinator

// Browser sessions: a cookie naming a session row and carrying its secret, of which the store
// keeps only the hash. Every replica sharing the store accepts it; signing in always starts a
// new session (the old one is deleted), signing out deletes it.

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// sessionPrefix starts a session cookie's value ("nxs_<id>.<secret>"), like the API's tokens.
const sessionPrefix = "nxs_"

// session is the signed-in browser of a request.
type session struct {
	ID        string
	UserID    string
	secret    string // from the cookie; keys the CSRF token
	ExpiresAt time.Time
}

// principal is the session's user, as the domain functions take it.
func (sess session) principal() Principal { return Principal{Kind: KindUser, UserID: sess.UserID} }

// cookieName is the session cookie's name: __Host- prefixed (Secure, Path=/, no Domain, so no
// other host or plain-HTTP page can set it) when the console is served over TLS.
func (w *web) cookieName(base string) string {
	if w.secure {
		return "__Host-" + base
	}
	return base
}

func (w *web) setCookie(rw http.ResponseWriter, base, value string, maxAge time.Duration) {
	c := &http.Cookie{
		Name: w.cookieName(base), Value: value, Path: "/", HttpOnly: true, Secure: w.secure,
		SameSite: http.SameSiteLaxMode,
	}
	if maxAge > 0 {
		c.MaxAge = int(maxAge / time.Second)
		c.Expires = w.s.now().Add(maxAge)
	} else {
		c.MaxAge = -1
	}
	http.SetCookie(rw, c)
}

const sessionCookie = "nexodus-session"

// session returns the request's valid session; ok is false when it has none (no cookie, an
// unknown, expired or forged one: a cookie of another coordinator names no session here).
func (w *web) session(r *http.Request) (sess session, ok bool, err error) {
	c, err := r.Cookie(w.cookieName(sessionCookie))
	if err != nil {
		return session{}, false, nil
	}
	id, secret, valid := splitToken(c.Value, sessionPrefix)
	if !valid {
		return session{}, false, nil
	}
	ctx := r.Context()
	sess, err = inTx(ctx, w.s.store, func(tx store.Tx) (session, error) {
		st, err := tx.GetSession(ctx, id)
		if err != nil {
			return session{}, err
		}
		if !secretMatches(secret, st.SecretHash) || !w.s.now().Before(st.ExpiresAt) {
			return session{}, store.ErrNotFound
		}
		if _, err := tx.GetUser(ctx, st.UserID); err != nil {
			return session{}, err
		}
		return session{ID: st.ID, UserID: st.UserID, secret: secret, ExpiresAt: st.ExpiresAt}, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return session{}, false, nil
	}
	return sess, err == nil, err
}

// startSession signs the browser in as userID: it deletes the browser's current session
// (prev, when it has one) and sets the cookie of a new one, so that a session cookie planted
// before sign-in never becomes a signed-in one.
func (w *web) startSession(ctx context.Context, rw http.ResponseWriter, prev session, userID string) error {
	now, secret := w.s.now(), newSecret()
	st := store.Session{ID: newID(), UserID: userID, SecretHash: hashSecret(secret), ExpiresAt: now.Add(w.cfg.SessionTTL), CreatedAt: now}
	err := w.s.store.Tx(ctx, func(tx store.Tx) error {
		if prev.ID != "" {
			if err := tx.DeleteSession(ctx, prev.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		return tx.CreateSession(ctx, st)
	})
	if err != nil {
		return err
	}
	w.setCookie(rw, sessionCookie, formatToken(sessionPrefix, st.ID, secret), w.cfg.SessionTTL)
	return nil
}

// endSession deletes the session and its cookie.
func (w *web) endSession(ctx context.Context, rw http.ResponseWriter, sess session) error {
	w.setCookie(rw, sessionCookie, "", 0)
	err := w.s.store.Tx(ctx, func(tx store.Tx) error { return tx.DeleteSession(ctx, sess.ID) })
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}
