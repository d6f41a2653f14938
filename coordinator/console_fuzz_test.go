package coordinator

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
)

// FuzzParseCallback: whatever a provider (or anyone) puts in the callback's query, parsing
// answers a bad request or bounded, printable parameters.
func FuzzParseCallback(f *testing.F) {
	f.Add("state=abc&code=xyz")
	f.Add("state=abc&error=access_denied&error_description=no%0Athanks")
	f.Add("code=xyz")
	f.Add("state=%00&code=%FF")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		p, err := parseCallback(q)
		if err != nil {
			require.ErrorIs(t, err, ErrBadRequest)
			return
		}
		require.NotEmpty(t, p.State)
		require.LessOrEqual(t, len(p.State), 256)
		require.True(t, printableASCII(p.State))
		require.True(t, p.Code != "" || p.Error != "")
		require.NotContains(t, p.ErrorDescription, "\n")
		require.LessOrEqual(t, len(p.ErrorDescription), 300)
	})
}

// FuzzSafeReturnTo: a return_to value never sends the browser off the site.
func FuzzSafeReturnTo(f *testing.F) {
	for _, s := range []string{"/console", "//evil.example", "/\\evil.example", "https://evil.example/", "/device?user_code=BCDF-GHJK", "/%2F%2Fevil", "/\t/evil", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := safeReturnTo(s)
		require.True(t, strings.HasPrefix(out, "/"))
		require.False(t, strings.HasPrefix(out, "//"))
		u, err := url.Parse(out)
		require.NoError(t, err)
		require.Empty(t, u.Host)
		require.Empty(t, u.Scheme)
		// A browser resolving it against the site stays on the site.
		base, _ := url.Parse("https://nexodus.example/")
		require.Equal(t, "nexodus.example", base.ResolveReference(u).Host)
	})
}

// FuzzUserCode: what a person types either is a code of the alphabet, in canonical form, or is
// refused.
func FuzzUserCode(f *testing.F) {
	f.Add("BCDF-GHJK")
	f.Add("bcdf ghjk")
	f.Add("ÄBCD-EFGH")
	f.Fuzz(func(t *testing.T, s string) {
		c, ok := normalizeUserCode(s)
		if !ok {
			return
		}
		require.Len(t, c, 9)
		again, ok := normalizeUserCode(c)
		require.True(t, ok)
		require.Equal(t, c, again)
	})
}

// FuzzUsernameBase: every name a provider's claims can yield is a valid username, also with
// the numeric suffix.
func FuzzUsernameBase(f *testing.F) {
	f.Add("alice@example.com", "")
	f.Add("", "Émile.Zola+news@example.com")
	f.Add("..--__", "@")
	f.Add(strings.Repeat("x", 300), "")
	f.Fuzz(func(t *testing.T, preferred, email string) {
		b := usernameBase(preferred, email)
		require.NoError(t, validName("username", b), "%q", b)
		require.NoError(t, validName("username", b+"99999"), "%q", b)
	})
}

// FuzzOAuthEndpoints posts arbitrary bodies to the device and token endpoints of a real
// coordinator: every answer is an OAuth error or a success, never a server error.
func FuzzOAuthEndpoints(f *testing.F) {
	f.Add(true, "client_id=nexctl")
	f.Add(false, "grant_type="+url.QueryEscape(api.DeviceCodeGrantType)+"&client_id=nexctl&device_code=abc")
	f.Add(false, "grant_type=x&grant_type=y&client_id=%ZZ")
	f.Add(true, "client_id="+strings.Repeat("a", 100))
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(f.TempDir(), "coord.db"))
	require.NoError(f, err)
	defer st.Close()
	cfg := Config{Store: st, Logger: testLogger()}
	withConsole(&cfg)
	s, err := New(ctx, cfg)
	require.NoError(f, err)
	defer s.Close()
	f.Fuzz(func(t *testing.T, deviceCode bool, body string) {
		path := api.TokenPath
		if deviceCode {
			path = api.DeviceAuthorizationPath
		}
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		require.Less(t, rec.Code, 500, "%s", rec.Body)
		if rec.Code != http.StatusOK {
			var oe api.OAuthError
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &oe), "%s", rec.Body)
			assert.NotEmpty(t, oe.Error)
		}
	})
}
