package coordinator

// The OAuth 2.0 device authorization grant (RFC 8628): a CLI or a Node without a browser asks
// for a device code, shows the person a short user code and the console's /device page, and
// polls the token endpoint; the person signs in to the console and approves (or denies) the
// code; the next poll answers a user API token. The state lives in the store, so any replica
// answers any step.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// Device authorization statuses (store.DeviceAuth.Status).
const (
	deviceAuthPending  = "pending"
	deviceAuthApproved = "approved"
	deviceAuthDenied   = "denied"
	deviceAuthUsed     = "used"
)

// userCodeAlphabet has no vowels (no words) and no look-alike characters (RFC 8628 §6.1).
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

// newUserCode returns eight random characters of userCodeAlphabet as "XXXX-XXXX": 20^8 codes,
// guessed one per request while the code lives (minutes).
func newUserCode() string {
	var out [9]byte
	out[4] = '-'
	for i := 0; i < 9; {
		if i == 4 {
			i++
			continue
		}
		var b [1]byte
		_, _ = rand.Read(b[:])
		if b[0] >= 240 { // 240 = 12*20: keep the draw uniform
			continue
		}
		out[i] = userCodeAlphabet[b[0]%20]
		i++
	}
	return string(out[:])
}

// normalizeUserCode accepts what a person types for a user code: any case, with or without
// the dash and spaces. ok is false for anything that cannot be a code.
func normalizeUserCode(s string) (code string, ok bool) {
	if len(s) > 32 {
		return "", false
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch {
		case r == '-' || r == ' ':
		case r < 128 && strings.IndexByte(userCodeAlphabet, byte(r)) >= 0:
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	if b.Len() != 8 {
		return "", false
	}
	c := b.String()
	return c[:4] + "-" + c[4:], true
}

// oauthError is an RFC 6749 error answer of the device and token endpoints.
type oauthError struct {
	status int
	body   api.OAuthError
}

func (e *oauthError) Error() string { return e.body.Error + ": " + e.body.ErrorDescription }

func oauthErr(status int, code, desc string) *oauthError {
	return &oauthError{status: status, body: api.OAuthError{Error: code, ErrorDescription: desc}}
}

// parseDeviceCodeRequest reads the form of POST /oauth/device/code: the client_id, which
// names the client to the person approving it (e.g. "nexctl").
func parseDeviceCodeRequest(form url.Values) (clientID string, err *oauthError) {
	clientID = form.Get("client_id")
	if e := validName("client_id", clientID); e != nil {
		return "", oauthErr(http.StatusBadRequest, api.OAuthInvalidClient, "client_id: 1 to 64 letters, digits, '.', '_' or '-'")
	}
	return clientID, nil
}

// parseDeviceTokenRequest reads the form of POST /oauth/token.
func parseDeviceTokenRequest(form url.Values) (clientID, deviceCode string, err *oauthError) {
	if gt := form.Get("grant_type"); gt != api.DeviceCodeGrantType {
		return "", "", oauthErr(http.StatusBadRequest, api.OAuthUnsupportedGrantType, "only the device code grant is served here")
	}
	clientID, err = parseDeviceCodeRequest(form)
	if err != nil {
		return "", "", err
	}
	deviceCode = form.Get("device_code")
	if deviceCode == "" || len(deviceCode) > 128 {
		return "", "", oauthErr(http.StatusBadRequest, api.OAuthInvalidRequest, "device_code is missing or malformed")
	}
	return clientID, deviceCode, nil
}

// startDeviceAuth makes a device code for clientID.
func (s *Server) startDeviceAuth(ctx context.Context, clientID string) (api.DeviceAuthorizationResponse, error) {
	cc := s.cfg.Console
	now, code := s.now(), newSecret()
	for attempt := 0; ; attempt++ {
		d := store.DeviceAuth{
			ID: newID(), DeviceCodeHash: hashSecret(code), UserCode: newUserCode(), ClientName: clientID,
			Status: deviceAuthPending, ExpiresAt: now.Add(cc.DeviceCodeTTL), CreatedAt: now,
		}
		err := s.store.Tx(ctx, func(tx store.Tx) error { return tx.CreateDeviceAuth(ctx, d) })
		if errors.Is(err, store.ErrConflict) && attempt < 3 {
			continue // a live user code drew the same characters
		}
		if err != nil {
			return api.DeviceAuthorizationResponse{}, err
		}
		verify := cc.ExternalURL + api.DeviceVerificationPath
		s.log.Info("device login started", "device_auth_id", d.ID, "client", clientID)
		return api.DeviceAuthorizationResponse{
			DeviceCode: code, UserCode: d.UserCode, VerificationURI: verify,
			VerificationURIComplete: verify + "?user_code=" + url.QueryEscape(d.UserCode),
			ExpiresIn:               int64(cc.DeviceCodeTTL / time.Second), Interval: int64(cc.DevicePollInterval / time.Second),
		}, nil
	}
}

// pollDeviceAuth answers one poll of the token endpoint: the token once approved (once only),
// or the RFC 8628 §3.5 error that tells the client what to do.
func (s *Server) pollDeviceAuth(ctx context.Context, clientID, deviceCode string) (api.OAuthTokenResponse, error) {
	cc := s.cfg.Console
	type outcome struct {
		tok  api.OAuthTokenResponse
		oerr *oauthError
		user string
	}
	bad := func(code, desc string) (outcome, error) {
		return outcome{oerr: oauthErr(http.StatusBadRequest, code, desc)}, nil
	}
	out, err := inTx(ctx, s.store, func(tx store.Tx) (outcome, error) {
		d, err := tx.GetDeviceAuthByCodeHash(ctx, hashSecret(deviceCode))
		if errors.Is(err, store.ErrNotFound) {
			return bad(api.OAuthInvalidGrant, "unknown device code")
		}
		if err != nil {
			return outcome{}, err
		}
		now := s.now()
		switch {
		case d.ClientName != clientID:
			return bad(api.OAuthInvalidGrant, "the device code was issued to another client")
		case d.Status == deviceAuthUsed:
			return bad(api.OAuthInvalidGrant, "the device code was already used")
		case !now.Before(d.ExpiresAt):
			return bad(api.OAuthExpiredToken, "the device code expired: start the login again")
		case d.Status == deviceAuthDenied:
			return bad(api.OAuthAccessDenied, "the login was denied")
		case d.Status == deviceAuthPending:
			// Polls closer together than the interval (with a fifth of slack for network
			// jitter) are told to slow down (RFC 8628 §3.5).
			tooFast := !d.LastPolledAt.IsZero() && now.Sub(d.LastPolledAt) < cc.DevicePollInterval*4/5
			d.LastPolledAt = now
			if err := tx.UpdateDeviceAuth(ctx, d); err != nil {
				return outcome{}, err
			}
			if tooFast {
				return bad(api.OAuthSlowDown, "polling too fast: wait 5 seconds more between polls")
			}
			return bad(api.OAuthAuthorizationPending, "waiting for the person to approve the code")
		}
		// Approved: issue the token and use the code up, in one transaction.
		secret := newSecret()
		t := store.Token{
			ID: newID(), UserID: d.UserID, Description: truncate("login: "+d.ClientName, maxDescriptionLength),
			SecretHash: hashSecret(secret), ExpiresAt: expiry(now, cc.DeviceTokenTTL), CreatedAt: now,
		}
		if err := tx.CreateToken(ctx, t); err != nil {
			return outcome{}, notFound(err, "user not found")
		}
		d.Status, d.LastPolledAt = deviceAuthUsed, now
		if err := tx.UpdateDeviceAuth(ctx, d); err != nil {
			return outcome{}, err
		}
		return outcome{user: d.UserID, tok: api.OAuthTokenResponse{
			AccessToken: formatToken(api.UserTokenPrefix, t.ID, secret), TokenType: "Bearer",
			ExpiresIn: int64(cc.DeviceTokenTTL / time.Second),
		}}, nil
	})
	if err != nil {
		return api.OAuthTokenResponse{}, err
	}
	if out.oerr != nil {
		return api.OAuthTokenResponse{}, out.oerr
	}
	s.log.Info("device login completed", "user_id", out.user, "client", clientID)
	return out.tok, nil
}

// pendingDeviceAuth loads a device authorization by the code a person typed, for them to
// approve or deny: 404 for an unknown code, 410 for one that expired or was answered.
func (s *Server) pendingDeviceAuth(ctx context.Context, tx store.Tx, userCode string) (store.DeviceAuth, error) {
	code, ok := normalizeUserCode(userCode)
	if !ok {
		return store.DeviceAuth{}, errorf(ErrBadRequest, "a code is eight letters, like BCDF-GHJK")
	}
	d, err := tx.GetDeviceAuthByUserCode(ctx, code)
	if err != nil {
		return d, notFound(err, "no login is waiting for this code: check the code your device shows")
	}
	if !s.now().Before(d.ExpiresAt) {
		return d, errorf(ErrGone, "this code expired: start the login on your device again")
	}
	if d.Status != deviceAuthPending {
		return d, errorf(ErrGone, "this code was already answered")
	}
	return d, nil
}

// lookupDeviceAuth is pendingDeviceAuth in a transaction of its own.
func (s *Server) lookupDeviceAuth(ctx context.Context, userCode string) (store.DeviceAuth, error) {
	return inTx(ctx, s.store, func(tx store.Tx) (store.DeviceAuth, error) { return s.pendingDeviceAuth(ctx, tx, userCode) })
}

// answerDeviceAuth approves (for the caller) or denies the login waiting for userCode.
func (s *Server) answerDeviceAuth(ctx context.Context, p Principal, userCode string, approve bool) (store.DeviceAuth, error) {
	d, err := inTx(ctx, s.store, func(tx store.Tx) (store.DeviceAuth, error) {
		d, err := s.pendingDeviceAuth(ctx, tx, userCode)
		if err != nil {
			return d, err
		}
		d.Status = deviceAuthDenied
		if approve {
			d.Status, d.UserID = deviceAuthApproved, p.UserID
		}
		return d, tx.UpdateDeviceAuth(ctx, d)
	})
	if err != nil {
		return d, err
	}
	s.log.Info("device login answered", "device_auth_id", d.ID, "user_id", p.UserID, "status", d.Status)
	return d, nil
}

// maxOAuthForm bounds the form bodies of the device and token endpoints.
const maxOAuthForm = 4 << 10

// handleDeviceCode serves POST /oauth/device/code.
func (w *web) handleDeviceCode(rw http.ResponseWriter, r *http.Request) {
	form, oerr := w.oauthForm(rw, r)
	var clientID string
	if oerr == nil {
		clientID, oerr = parseDeviceCodeRequest(form)
	}
	if oerr == nil {
		oerr = w.limitSource(rw, r)
	}
	if oerr == nil && !w.limiter.Allow() {
		oerr = oauthErr(http.StatusTooManyRequests, api.OAuthSlowDown, "too many logins are starting: try again in a minute")
	}
	if oerr != nil {
		w.writeOAuthError(rw, oerr)
		return
	}
	resp, err := w.s.startDeviceAuth(r.Context(), clientID)
	if err != nil {
		w.s.writeError(rw, r, err)
		return
	}
	rw.Header().Set("Cache-Control", "no-store")
	writeJSON(rw, http.StatusOK, resp)
}

// handleToken serves POST /oauth/token.
func (w *web) handleToken(rw http.ResponseWriter, r *http.Request) {
	form, oerr := w.oauthForm(rw, r)
	var clientID, code string
	if oerr == nil {
		clientID, code, oerr = parseDeviceTokenRequest(form)
	}
	if oerr == nil {
		oerr = w.limitSource(rw, r)
	}
	if oerr != nil {
		w.writeOAuthError(rw, oerr)
		return
	}
	tok, err := w.s.pollDeviceAuth(r.Context(), clientID, code)
	switch {
	case errors.As(err, &oerr):
		w.writeOAuthError(rw, oerr)
	case err != nil:
		w.s.writeError(rw, r, err)
	default:
		rw.Header().Set("Cache-Control", "no-store")
		rw.Header().Set("Pragma", "no-cache")
		writeJSON(rw, http.StatusOK, tok)
	}
}

// limitSource charges an OAuth request to its source address; over the limit it answers in
// OAuth's own form (slow_down), which a device client reads, with Retry-After saying when.
func (w *web) limitSource(rw http.ResponseWriter, r *http.Request) *oauthError {
	err := w.s.limitUnauthenticated(r)
	if err == nil {
		return nil
	}
	setRetryAfter(rw, err)
	return oauthErr(http.StatusTooManyRequests, api.OAuthSlowDown, "too many requests from this address: try again later")
}

// oauthForm reads the size-limited form body of an OAuth endpoint.
func (w *web) oauthForm(rw http.ResponseWriter, r *http.Request) (url.Values, *oauthError) {
	r.Body = http.MaxBytesReader(rw, r.Body, maxOAuthForm)
	if err := r.ParseForm(); err != nil {
		return nil, oauthErr(http.StatusBadRequest, api.OAuthInvalidRequest, fmt.Sprintf("cannot read the form: %s", truncate(err.Error(), 100)))
	}
	return r.PostForm, nil
}

func (w *web) writeOAuthError(rw http.ResponseWriter, e *oauthError) {
	rw.Header().Set("Cache-Control", "no-store")
	writeJSON(rw, e.status, e.body)
}
