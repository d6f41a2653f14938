package coordinator

// Cross-site request forgery: every state-changing console form carries a token that only a
// page of this session can know, the HMAC of the session's secret (which lives only in the
// HttpOnly cookie), so every replica can check it without shared keys or stored state. The API
// under /api/v1 takes bearer tokens only, never the cookie, so it needs no such token.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
)

// csrfField is the name of the hidden form field that carries the token.
const csrfField = "csrf"

// csrfToken is the session's CSRF token.
func (sess session) csrfToken() string {
	return base64.RawURLEncoding.EncodeToString(sess.csrfMAC())
}

func (sess session) csrfMAC() []byte {
	m := hmac.New(sha256.New, []byte(sess.secret))
	m.Write([]byte("nexodus console csrf v1"))
	return m.Sum(nil)
}

var errBadCSRF = errorf(ErrForbidden, "this form is out of date or did not come from this console: reload the page and try again")

// checkCSRF compares the form's token with the session's in constant time. The form must be
// parsed already.
func (sess session) checkCSRF(r *http.Request) error {
	got, err := base64.RawURLEncoding.DecodeString(r.PostForm.Get(csrfField))
	if err != nil || !hmac.Equal(got, sess.csrfMAC()) {
		return errBadCSRF
	}
	return nil
}
