package nexodus_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus"
	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
	"github.com/nexodus-sdk/nexodus/internal/consoletest"
)

// A node without an auth key but with OnLoginURL signs in through the coordinator's device
// login: it reports the URL, a person approves it in the console, and the node registers into
// that person's personal organization, keeping no user token. Restarted on its state dir, it
// needs no login again.
func TestNodeLogsInWithDeviceLogin(t *testing.T) {
	env := consoletest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	urls := make(chan string, 1)
	dir := t.TempDir()
	n := &nexodus.Node{ControlURL: env.URL, Hostname: "laptop", StateDir: dir, OnLoginURL: func(u string) { urls <- u }}
	defer n.Close()
	up := make(chan error, 1)
	go func() {
		_, err := n.Up(ctx)
		up <- err
	}()

	var loginURL string
	select {
	case loginURL = <-urls:
	case err := <-up:
		t.Fatalf("Up returned before asking for a login: %v", err)
	}
	u, err := url.Parse(loginURL)
	require.NoError(t, err)
	code := u.Query().Get("user_code")
	require.NotEmpty(t, code, "the login URL carries its code: %s", loginURL)

	b := env.Browser()
	require.NoError(t, env.SignIn(ctx, b, "alice"))
	require.NoError(t, env.ApproveDevice(ctx, b, code))
	require.NoError(t, <-up, "Up after the approval")

	st := n.Status()
	assert.Equal(t, "laptop", st.Hostname)
	// The device is alice's: a token of hers reads it. The login's own token is gone.
	alice := aliceClient(ctx, t, env)
	d, err := alice.GetDevice(ctx, st.DeviceID)
	require.NoError(t, err)
	assert.Equal(t, "laptop", d.Hostname)
	tokens, err := alice.ListMyTokens(ctx)
	require.NoError(t, err)
	for _, tok := range tokens {
		assert.NotContains(t, tok.Description, "nexodus-node", "the login's user token was revoked")
	}
	require.NoError(t, n.Close())

	// The saved device needs no login.
	again := &nexodus.Node{ControlURL: env.URL, Hostname: "laptop", StateDir: dir, OnLoginURL: func(string) { t.Error("asked for a login again") }}
	defer again.Close()
	_, err = again.Up(ctx)
	require.NoError(t, err)
	assert.Equal(t, st.DeviceID, again.Status().DeviceID)
}

// aliceClient is a client with a fresh API token of the console user alice, minted by the
// admin.
func aliceClient(ctx context.Context, t *testing.T, env *consoletest.Env) *client.Client {
	admin, err := client.New(env.URL, client.WithToken(env.AdminToken))
	require.NoError(t, err)
	users, err := admin.ListUsers(ctx)
	require.NoError(t, err)
	for _, u := range users {
		if u.Username == "alice" {
			tok, err := admin.CreateToken(ctx, u.ID, api.CreateTokenRequest{Description: "test"})
			require.NoError(t, err)
			c, err := client.New(env.URL, client.WithToken(tok.Secret))
			require.NoError(t, err)
			return c
		}
	}
	require.FailNow(t, "no user alice", "%+v", users)
	return nil
}
