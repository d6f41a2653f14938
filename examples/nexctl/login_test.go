package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/internal/consoletest"
)

// lockedBuffer is a buffer a test reads while nexctl writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var userCodeRE = regexp.MustCompile(`code ([BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4})`)

// TestLogin signs nexctl in through the coordinator's device login: nexctl prints a code,
// the person (a browser signed in at the provider) approves it in the console, and nexctl
// saves the token, mode 0600, and uses it from then on.
func TestLogin(t *testing.T) {
	env := consoletest.Start(t)
	dir := filepath.Join(t.TempDir(), "config")
	c := cli{t: t, env: map[string]string{"NEXODUS_URL": env.URL, "NEXODUS_CONFIG_DIR": dir}}
	c.fails(exitUsage, "run 'nexctl login'", "user", "me")

	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(t.Context(), []string{"login"}, &stdout, &stderr, func(k string) string { return c.env[k] })
	}()
	var code string
	require.Eventually(t, func() bool {
		m := userCodeRE.FindStringSubmatch(stderr.String())
		if m != nil {
			code = m[1]
		}
		return m != nil
	}, 10*time.Second, 20*time.Millisecond, "nexctl login shows a code")
	assert.Contains(t, stderr.String(), env.URL+"/device?user_code=")

	browser := env.Browser()
	require.NoError(t, env.SignIn(t.Context(), browser, "alice"))
	require.NoError(t, env.ApproveDevice(t.Context(), browser, code))
	select {
	case rc := <-done:
		require.Zero(t, rc, "nexctl login: %s %s", stdout.String(), stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("nexctl login did not finish after the approval")
	}
	assert.Contains(t, stdout.String(), "Signed in to "+env.URL+" as alice")

	info, err := os.Stat(filepath.Join(dir, "credentials.json"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	// The saved token is used by default.
	var me api.User
	c.json(&me, "user", "me")
	assert.Equal(t, "alice", me.Username)

	// Self-service tokens.
	var tok api.Token
	c.json(&tok, "token", "create", "ci", "--expires", "1d")
	require.NotEmpty(t, tok.Secret)
	var ts []api.Token
	c.json(&ts, "token", "list")
	assert.Len(t, ts, 2, "the login's token and ci")
	ci := c.as(tok.Secret)
	ci.ok("user", "me")
	c.ok("token", "revoke", tok.ID)
	ci.fails(exitError, "revoked", "user", "me")

	// Logging out revokes the saved token and forgets it.
	assert.Contains(t, c.ok("logout"), "Signed out")
	c.fails(exitUsage, "run 'nexctl login'", "user", "me")

	// A credentials file others may read is refused.
	require.NoError(t, os.Chmod(filepath.Join(dir, "credentials.json"), 0o644))
	c.fails(exitError, "chmod 600", "user", "me")
}

func TestMemberRoleAndUserDelete(t *testing.T) {
	admin := adminCLI(t)
	admin.ok("user", "create", "alice")
	admin.ok("user", "create", "bob")
	alice, bob := admin.user("alice"), admin.user("bob")
	alice.ok("org", "create", "acme")
	var inv api.Invitation
	alice.json(&inv, "invite", "create", "bob", "--org", "acme")
	bob.ok("invite", "accept", inv.ID)

	bob.fails(exitError, "only an owner", "member", "role", "alice", "member", "--org", "acme")
	alice.fails(exitUsage, "owner or member", "member", "role", "bob", "admin", "--org", "acme")
	// alice is acme's only owner, and bob belongs to it: she cannot go first.
	alice.fails(exitError, "only owner of acme", "user", "delete", "me")
	var m api.Member
	alice.json(&m, "member", "role", "bob", "owner", "--org", "acme")
	assert.Equal(t, api.RoleOwner, m.Role)

	// With another owner, acme passes to bob when alice goes.
	alice.ok("user", "delete", "me")
	alice.fails(exitError, "", "user", "me")
	var me api.User
	bob.json(&me, "user", "me")
	var orgs []api.Organization
	bob.json(&orgs, "org", "list")
	require.True(t, slices.ContainsFunc(orgs, func(o api.Organization) bool { return o.Name == "acme" && o.OwnerID == me.ID }), "acme is bob's: %+v", orgs)
	bob.ok("user", "delete", "me")
	var us []api.User
	admin.json(&us, "user", "list")
	assert.Empty(t, us)
}
