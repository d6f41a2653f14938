package coordinator

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
)

// withConsole turns the console on with a provider that is never contacted (discovery is
// lazy), for tests of what does not need one.
func withConsole(c *Config) {
	c.Console = &ConsoleConfig{
		ExternalURL:        baseURL,
		Providers:          []OIDCProvider{{Name: "test", Issuer: "https://issuer.invalid", ClientID: "x"}},
		DevicePollInterval: 5 * time.Second,
		DeviceCodeTTL:      10 * time.Minute,
	}
}

// form posts a form to an OAuth endpoint and returns the status and body.
func (e *env) form(path string, v url.Values) (int, []byte) {
	e.t.Helper()
	resp := e.request(context.Background(), "POST", path, "", v.Encode(), "Content-Type", "application/x-www-form-urlencoded")
	defer resp.Body.Close()
	var b json.RawMessage
	require.NoError(e.t, json.NewDecoder(resp.Body).Decode(&b))
	return resp.StatusCode, b
}

func (e *env) startDeviceLogin(client string) api.DeviceAuthorizationResponse {
	e.t.Helper()
	st, b := e.form(api.DeviceAuthorizationPath, url.Values{"client_id": {client}})
	require.Equal(e.t, http.StatusOK, st, "%s", b)
	var d api.DeviceAuthorizationResponse
	require.NoError(e.t, json.Unmarshal(b, &d))
	return d
}

// poll polls the token endpoint once and returns the token or the OAuth error code.
func (e *env) poll(client, code string) (api.OAuthTokenResponse, string) {
	e.t.Helper()
	st, b := e.form(api.TokenPath, url.Values{"grant_type": {api.DeviceCodeGrantType}, "client_id": {client}, "device_code": {code}})
	if st == http.StatusOK {
		var tok api.OAuthTokenResponse
		require.NoError(e.t, json.Unmarshal(b, &tok))
		return tok, ""
	}
	require.Equal(e.t, http.StatusBadRequest, st, "%s", b)
	var oe api.OAuthError
	require.NoError(e.t, json.Unmarshal(b, &oe))
	return api.OAuthTokenResponse{}, oe.Error
}

func TestDeviceLoginApproved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, withConsole)
		alice := e.newUser("alice")
		d := e.startDeviceLogin("nexctl")
		assert.Regexp(t, `^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`, d.UserCode)
		assert.Equal(t, baseURL+"/device", d.VerificationURI)
		assert.Equal(t, baseURL+"/device?user_code="+url.QueryEscape(d.UserCode), d.VerificationURIComplete)
		assert.EqualValues(t, 600, d.ExpiresIn)
		assert.EqualValues(t, 5, d.Interval)

		_, code := e.poll("nexctl", d.DeviceCode)
		assert.Equal(t, api.OAuthAuthorizationPending, code)
		time.Sleep(2 * time.Second)
		_, code = e.poll("nexctl", d.DeviceCode)
		assert.Equal(t, api.OAuthSlowDown, code, "polled before the interval passed")
		time.Sleep(5 * time.Second)
		_, code = e.poll("nexctl", d.DeviceCode)
		assert.Equal(t, api.OAuthAuthorizationPending, code)
		_, code = e.poll("other-client", d.DeviceCode)
		assert.Equal(t, api.OAuthInvalidGrant, code, "the code belongs to the client it was issued to")

		// The person types the code as they like: lowercase, without the dash.
		typed := d.UserCode[:4] + d.UserCode[5:]
		_, err := e.coord.answerDeviceAuth(context.Background(), Principal{Kind: KindUser, UserID: alice.ID}, " "+typed+" ", true)
		require.NoError(t, err)
		_, err = e.coord.answerDeviceAuth(context.Background(), Principal{Kind: KindUser, UserID: alice.ID}, d.UserCode, true)
		assert.ErrorIs(t, err, ErrGone, "a code is answered once")

		time.Sleep(5 * time.Second)
		tok, code := e.poll("nexctl", d.DeviceCode)
		require.Empty(t, code)
		assert.Equal(t, "Bearer", tok.TokenType)
		assert.EqualValues(t, 30*24*3600, tok.ExpiresIn)
		var me api.User
		e.call("GET", "/api/v1/users/me", tok.AccessToken, nil, 200, &me)
		assert.Equal(t, alice.ID, me.ID)

		time.Sleep(5 * time.Second)
		_, code = e.poll("nexctl", d.DeviceCode)
		assert.Equal(t, api.OAuthInvalidGrant, code, "the token is issued once")

		var ts []api.Token
		e.call("GET", "/api/v1/users/me/tokens", alice.Token, nil, 200, &ts)
		assert.Len(t, ts, 2, "the admin's token and the login's")
	})
}

func TestDeviceLoginDeniedAndExpired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, withConsole)
		alice := e.newUser("alice")
		p := Principal{Kind: KindUser, UserID: alice.ID}
		denied := e.startDeviceLogin("nexctl")
		_, err := e.coord.answerDeviceAuth(context.Background(), p, denied.UserCode, false)
		require.NoError(t, err)
		_, code := e.poll("nexctl", denied.DeviceCode)
		assert.Equal(t, api.OAuthAccessDenied, code)

		late := e.startDeviceLogin("nexctl")
		time.Sleep(10*time.Minute + time.Second)
		_, code = e.poll("nexctl", late.DeviceCode)
		assert.Equal(t, api.OAuthExpiredToken, code)
		_, err = e.coord.answerDeviceAuth(context.Background(), p, late.UserCode, true)
		assert.ErrorIs(t, err, ErrGone, "an expired code cannot be approved")

		_, code = e.poll("nexctl", "no-such-code")
		assert.Equal(t, api.OAuthInvalidGrant, code)
		_, err = e.coord.answerDeviceAuth(context.Background(), p, "BCDF-GHJK", true)
		assert.ErrorIs(t, err, ErrNotFound)
		_, err = e.coord.answerDeviceAuth(context.Background(), p, "AAAA-AAAA", true)
		assert.ErrorIs(t, err, ErrBadRequest, "vowels are never in a code")
	})
}

func TestDeviceEndpointsRefuseMalformedRequests(t *testing.T) {
	e := newEnv(t, withConsole)
	for _, tc := range []struct {
		path string
		form url.Values
		want string
	}{
		{api.DeviceAuthorizationPath, url.Values{}, api.OAuthInvalidClient},
		{api.DeviceAuthorizationPath, url.Values{"client_id": {"has space"}}, api.OAuthInvalidClient},
		{api.TokenPath, url.Values{"client_id": {"nexctl"}, "device_code": {"x"}}, api.OAuthUnsupportedGrantType},
		{api.TokenPath, url.Values{"grant_type": {"authorization_code"}, "client_id": {"nexctl"}}, api.OAuthUnsupportedGrantType},
		{api.TokenPath, url.Values{"grant_type": {api.DeviceCodeGrantType}, "client_id": {"nexctl"}}, api.OAuthInvalidRequest},
		{api.TokenPath, url.Values{"grant_type": {api.DeviceCodeGrantType}, "device_code": {"x"}}, api.OAuthInvalidClient},
	} {
		st, b := e.form(tc.path, tc.form)
		assert.Equal(t, http.StatusBadRequest, st, "%s %v", tc.path, tc.form)
		var oe api.OAuthError
		require.NoError(t, json.Unmarshal(b, &oe))
		assert.Equal(t, tc.want, oe.Error, "%s %v", tc.path, tc.form)
	}
	// Bodies are size-limited.
	st, _ := e.form(api.DeviceAuthorizationPath, url.Values{"client_id": {"nexctl"}, "pad": {string(make([]byte, maxOAuthForm))}})
	assert.Equal(t, http.StatusBadRequest, st)
}

func TestNormalizeUserCode(t *testing.T) {
	for in, want := range map[string]string{
		"BCDF-GHJK": "BCDF-GHJK", "bcdfghjk": "BCDF-GHJK", " bcdf ghjk ": "BCDF-GHJK", "BC-DF-GH-JK": "BCDF-GHJK",
		"": "", "BCDF-GHJ": "", "BCDF-GHJKL": "", "ABCD-EFGH": "", "BCDF-GHJ1": "", "BCDF\u00a0GHJK": "",
	} {
		got, ok := normalizeUserCode(in)
		assert.Equal(t, want != "", ok, "%q", in)
		assert.Equal(t, want, got, "%q", in)
	}
	for range 100 {
		c := newUserCode()
		n, ok := normalizeUserCode(c)
		require.True(t, ok, c)
		require.Equal(t, c, n)
	}
}
