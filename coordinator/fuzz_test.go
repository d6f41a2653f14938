package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
)

// FuzzHandler throws arbitrary methods, paths, bodies, credentials and headers at the whole
// handler of a populated coordinator and requires that nothing answers 5xx (or panics) and
// every error body is an api.Error. Placeholders in the path ({org}, {dev}, {peer}, {user},
// {inv}, {key}, {other}) are replaced with real IDs so inputs reach deep into the handlers.
func FuzzHandler(f *testing.F) {
	e := newEnv(f, lenientSources) // garbage credentials would soon get only 429s
	w := e.newWorld()
	creds := []string{"", adminToken, w.alice.Token, w.bob.Token, w.carol.Token, w.dave.Token, w.acmeKey.Secret, w.d1.Token, w.x1.Token}
	repl := strings.NewReplacer("{org}", w.acme.ID, "{dev}", w.d1.ID, "{peer}", w.d2.ID, "{user}", w.bob.ID,
		"{inv}", w.inv.ID, "{key}", w.acmeKey.ID, "{other}", w.x1.ID, "{pub}", w.d1.Key.Pub)

	seeds := []struct {
		method, path, body string
		cred               uint8
	}{
		{"POST", "/users", `{"username":"zed"}`, 1},
		{"POST", "/users/{user}/tokens", `{"expires_in_seconds":99999999999999}`, 1},
		{"POST", "/organizations", `{"name":"o1","ipv4_cidr":"10.0.0.0/30"}`, 2},
		{"POST", "/organizations", `{"name":"o1","ipv4_cidr":"::/0"}`, 2},
		{"DELETE", "/organizations/{org}/members/{user}", ``, 3},
		{"POST", "/invitations", `{"organization_id":"{org}","username":"x","role":"owner"}`, 2},
		{"POST", "/invitations/{inv}/accept", `garbage`, 5},
		{"POST", "/reg-keys", `{"organization_id":"{org}","single_use":true,"expires_in_seconds":-1}`, 2},
		{"POST", "/devices", `{"public_key":"{pub}","hostname":"h","endpoints":[{"source":"local","address":"[fe80::1%eth0]:1"}],"child_prefixes":["10.0.0.0/8"]}`, 6},
		{"POST", "/devices", `{"public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","hostname":"h"}`, 6},
		{"POST", "/devices", `{"organization_id":"{org}","public_key":"{pub}","hostname":"d1","child_prefixes":["fd00::/8"]}`, 2},
		{"PATCH", "/devices/{dev}", `{"hostname":"-bad-","organization_id":"{org}"}`, 7},
		{"PATCH", "/devices/{dev}", `{"child_prefixes":["192.168.0.0/16","fd00::/8"],"endpoints":[]}`, 2},
		{"POST", "/devices/{peer}/signal", `{"payload":"aGk="}`, 7},
		{"POST", "/devices/{other}/signal", `{"payload":"aGk="} {}`, 7},
		{"GET", "/devices/{dev}/events", ``, 7},
		{"GET", "/organizations/{org}/events", ``, 2},
		{"GET", "/organizations/..%2f/devices", ``, 2},
		{"PUT", "/organizations/{org}/relays", `{"turn":["turn:1.2.3.4:3478?transport=udp"],"stun":["1.2.3.4:3478"],"secret":"0123456789abcdef"}`, 2},
		{"PUT", "/organizations/{org}/relays", `{"turn":["turns:[::1]:0?transport=tcp"],"secret":"x"}`, 3},
		{"GET", "/organizations/{org}/relays", ``, 3},
		{"DELETE", "/organizations/{org}/relays", ``, 2},
		{"GET", "/devices/{dev}/relay", ``, 7},
		{"PUT", "/users", `{}`, 1},
		{"GET", "/nothing/here", ``, 0},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, []byte(s.body), s.cred, "")
	}
	f.Add("GET", "/organizations/{org}/events", []byte(nil), uint8(2), "7")
	f.Add("GET", "/devices/{dev}/events", []byte(nil), uint8(7), "-5")

	f.Fuzz(func(t *testing.T, method, path string, body []byte, cred uint8, lastID string) {
		e.t = t
		req, err := http.NewRequest(method, "http://coord"+api.Prefix+repl.Replace(path), bytes.NewReader(body))
		if err != nil {
			return
		}
		if c := creds[int(cred)%len(creds)]; c != "" {
			req.Header.Set("Authorization", "Bearer "+c)
		} else if cred >= 128 {
			req.Header.Set("Authorization", "Bearer "+string(body))
		}
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		// A generous deadline, only so that a hung handler cannot hang the fuzzer: on a busy
		// machine a short one turns slow store transactions into failures. An event stream
		// never ends by itself, so it is ended as soon as it has started (see streamEnder).
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rec := httptest.NewRecorder()
		e.coord.ServeHTTP(&streamEnder{ResponseRecorder: rec, cancel: cancel}, req.WithContext(ctx))
		require.Less(t, rec.Code, 500, "%s %s: %s", method, path, rec.Body.Bytes())
		if rec.Code >= 400 {
			var ae api.Error
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &ae), "%s %s -> %d with body %q", method, path, rec.Code, rec.Body.Bytes())
			require.NotEmpty(t, ae.Code, "%s %s -> %d with body %q", method, path, rec.Code, rec.Body.Bytes())
			require.NotEmpty(t, ae.Message, "%s %s -> %d with body %q", method, path, rec.Code, rec.Body.Bytes())
		}
	})
}

// streamEnder records a response and cancels the request once it turns out to be an event
// stream (a 200 with the SSE content type), so that the stream handler returns.
type streamEnder struct {
	*httptest.ResponseRecorder
	cancel context.CancelFunc
}

func (w *streamEnder) WriteHeader(code int) {
	if code == http.StatusOK && w.Header().Get("Content-Type") == "text/event-stream" {
		w.cancel()
	}
	w.ResponseRecorder.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the recorder's Flush.
func (w *streamEnder) Unwrap() http.ResponseWriter { return w.ResponseRecorder }

// decodes decodes b as a request body into dst and runs check on it, if set; it reports
// whether both succeeded and requires that a failure is a 4xx.
func decodes(t *testing.T, b []byte, dst any, check func() error) bool {
	t.Helper()
	err := decodeJSON(httptest.NewRecorder(), httptest.NewRequest("POST", "/", bytes.NewReader(b)), dst, false)
	if err == nil && check != nil {
		err = check()
	}
	if err != nil {
		st, _ := statusOf(err)
		require.Contains(t, []int{400, 413}, st, "error %v", err)
	}
	return err == nil
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"public_key":"x","hostname":"h"}`, `{}`, ``, `null`, `{"hostname":"a"}{}`, `{"unknown":1}`,
		`{"endpoints":[{"source":"local","address":"1.2.3.4:5"}]}`, `[1,2]`, `{"symmetric_nat":"yes"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req api.RegisterDeviceRequest
		if !decodes(t, b, &req, nil) {
			return
		}
		require.LessOrEqual(t, len(b), api.MaxRequestBody, "accepted bytes")
		_, err := json.Marshal(req)
		require.NoError(t, err)
	})
}

// FuzzOrgRelaysRequest feeds arbitrary bodies to the PUT /organizations/{id}/relays decoder
// and validator: errors are 4xx, and whatever is accepted is within the documented limits.
func FuzzOrgRelaysRequest(f *testing.F) {
	for _, s := range []string{
		`{"turn":["turn:1.2.3.4:3478?transport=udp"],"secret":"0123456789abcdef"}`,
		`{"turn":["turns:relay.example.com:5349?transport=tcp","turn:[2001:db8::1]:3478?transport=udp"],"stun":["a.b:1"],"secret":"0123456789abcdef"}`,
		`{"turn":["turn:1.2.3.4:3478?transport=udp","turn:1.2.3.4:3478?transport=udp"],"secret":"0123456789abcdef"}`,
		`{"turn":["turn:1.2.3.4:3478"],"secret":"short"}`, `{"turn":[],"secret":""}`, `{"turn":null}`,
		`{"turn":["turn:1.2.3.4:03478?transport=udp"],"secret":"0123456789abcdef"}`,
		`{"turn":["turn:999:1?transport=udp"],"secret":"0123456789abcdef"}`,
		`{"turn":["turn:[1.2.3.4]:1?transport=udp"],"secret":"0123456789abcdef"}`, `{"secret":1}`, ``, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req api.SetOrgRelaysRequest
		var stun, turn []string
		var secret []byte
		if !decodes(t, b, &req, func() (err error) { stun, turn, secret, err = parseOrgRelays(req); return err }) {
			return
		}
		require.NotEmpty(t, turn, "accepted no TURN server")
		require.LessOrEqual(t, len(turn), api.MaxRelayServers, "accepted %d TURN servers", len(turn))
		require.LessOrEqual(t, len(stun), api.MaxRelayServers, "accepted %d STUN servers", len(stun))
		require.GreaterOrEqual(t, len(secret), api.MinRelaySecret, "accepted secret %q: too short", secret)
		require.LessOrEqual(t, len(secret), api.MaxRelaySecret, "accepted secret %q: too long", secret)
		require.False(t, bytes.ContainsAny(secret, " \t\r\n"), "accepted secret %q: it has white space", secret)
		for _, u := range turn {
			require.True(t, strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:"),
				"accepted TURN URL %q: want scheme turn: or turns:", u)
			require.True(t, strings.HasSuffix(u, "?transport=udp") || strings.HasSuffix(u, "?transport=tcp"),
				"accepted TURN URL %q: want ?transport=udp or ?transport=tcp at the end", u)
			require.LessOrEqual(t, len(u), api.MaxRelayURLLength, "accepted TURN URL %q: too long", u)
			require.False(t, strings.ContainsAny(u, " @/#"), "accepted TURN URL %q: it has one of space @ / #", u)
		}
		for _, hp := range stun {
			_, _, err := net.SplitHostPort(hp)
			require.NoError(t, err, "accepted STUN server %q: want HOST:PORT", hp)
			require.False(t, strings.ContainsAny(hp, " @/?#"), "accepted STUN server %q: it has one of space @ / ? #", hp)
		}
		seen := map[string]bool{}
		for _, v := range append(slices.Clone(turn), stun...) {
			require.False(t, seen[v], "duplicate %q kept", v)
			seen[v] = true
		}
	})
}

func FuzzValidators(f *testing.F) {
	for _, s := range []string{
		"host-1", "-x", "a.b", strings.Repeat("a", 64), "1.2.3.4:80", "[::1]:443", "[fe80::1%eth0]:1",
		"0.0.0.0:1", "10.0.0.0/8", "10.0.0.1/8", "fd00::/64", "::ffff:10.0.0.0/104", "nxu_x.y",
		"nxd_00000000-0000-4000-8000-000000000000.s", "00000000-0000-4000-8000-000000000000",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "42", "-1", "",
	} {
		f.Add(s)
	}
	org4 := netip.MustParsePrefix("100.64.0.0/16")
	org6 := netip.MustParsePrefix("fd12:3456:789a::/64")
	f.Fuzz(func(t *testing.T, s string) {
		if validHostname(s) == nil {
			require.NotEmpty(t, s, "empty hostname accepted")
			require.LessOrEqual(t, len(s), 63, "hostname %q accepted: longer than 63", s)
			require.False(t, strings.HasPrefix(s, "-") || strings.HasSuffix(s, "-"), "hostname %q accepted: it starts or ends with -", s)
			require.False(t, strings.ContainsAny(s, "._ /"), "hostname %q accepted: it has one of . _ space /", s)
		}
		if validName("name", s) == nil {
			require.NotEmpty(t, s, "empty name accepted")
			require.LessOrEqual(t, len(s), api.MaxNameLength, "name %q accepted: too long", s)
			require.False(t, strings.ContainsAny(s, " /%"), "name %q accepted: it has one of space / %%", s)
		}
		if k, err := devicePublicKey(s); err == nil {
			require.Equal(t, s, k.String(), "non-canonical key %q accepted", s)
		}
		if ap, err := parseAddrPort(s); err == nil {
			again, err := parseAddrPort(ap.String())
			require.NoError(t, err, "endpoint %q does not round-trip", s)
			require.Equal(t, ap, again, "endpoint %q does not round-trip", s)
		}
		if ps, err := parseChildPrefixes([]string{s}, org4, org6); err == nil {
			p := netip.MustParsePrefix(ps[0])
			require.Equal(t, p.Masked(), p, "child prefix %q accepted as %s: not masked", s, p)
			require.False(t, p.Overlaps(org4) || p.Overlaps(org6), "child prefix %q accepted as %s: it overlaps the organization's prefixes", s, p)
		}
		if p, err := parseOrgCIDR(s); err == nil {
			require.True(t, p.Addr().Is4(), "org cidr %q accepted: want IPv4", s)
			require.LessOrEqual(t, p.Bits(), 30, "org cidr %q accepted: want at most /30", s)
			require.Equal(t, p.Masked(), p, "org cidr %q accepted: not masked", s)
		}
		if rev, ok, err := parseLastEventID(s); err == nil && ok {
			require.GreaterOrEqual(t, rev, int64(0), "negative revision from %q", s)
		}
		for _, prefix := range []string{api.UserTokenPrefix, api.RegKeyPrefix, api.DeviceTokenPrefix} {
			if id, secret, ok := splitToken(s, prefix); ok {
				require.True(t, validID(id), "token %q split into %q %q: invalid ID", s, id, secret)
				require.NotEmpty(t, secret, "token %q split into %q %q: empty secret", s, id, secret)
			}
		}
		_ = checkID("id", s)
	})
}
