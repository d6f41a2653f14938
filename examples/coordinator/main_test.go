package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
)

func TestAdminTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db"+adminTokenSuffix)
	tok, created, err := loadOrCreateAdminToken(path)
	require.NoError(t, err, "first start")
	require.True(t, created, "first start")
	require.GreaterOrEqual(t, len(tok), 32, "first start: token %q", tok)
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "token file mode")
	again, created, err := loadOrCreateAdminToken(path)
	require.NoError(t, err, "second start")
	assert.False(t, created, "second start")
	assert.Equal(t, tok, again, "second start: the same token")
	// A token file others can read is refused rather than used.
	require.NoError(t, os.Chmod(path, 0o644))
	_, _, err = loadOrCreateAdminToken(path)
	assert.ErrorContains(t, err, "chmod 600", "readable token file")
	empty := filepath.Join(t.TempDir(), "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	_, _, err = loadOrCreateAdminToken(empty)
	assert.Error(t, err, "an empty token file")
	_, _, err = loadOrCreateAdminToken(filepath.Join(t.TempDir(), "missing", "x"))
	assert.Error(t, err, "a token file in a missing directory")
}

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listeningRE = regexp.MustCompile(`msg="coordinator listening" addr=(\S+)`)

// start runs the binary's run function and waits until it listens; stop ends it and checks
// that it shut down cleanly.
func start(t *testing.T, args ...string) (url string, logs *syncBuffer, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, logs) }()
	var ended atomic.Bool
	require.Eventually(t, func() bool {
		if m := listeningRE.FindStringSubmatch(logs.String()); m != nil {
			url = "http://" + m[1]
			return true
		}
		select {
		case err := <-done:
			done <- err
			ended.Store(true)
			return true
		default:
			return false
		}
	}, 20*time.Second, 5*time.Millisecond, "listening:\n%s", logs)
	if ended.Load() {
		cancel()
		require.FailNowf(t, "run ended before listening", "%v\n%s", <-done, logs)
	}
	return url, logs, func() {
		t.Helper()
		cancel()
		assert.NoError(t, <-done, "run: %s", logs)
	}
}

func post(t *testing.T, url, token string, body any) int {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	req, err := http.NewRequest("POST", url, bytes.NewReader(b))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// TestStartsWithoutAdminToken: "-listen ADDR -db FILE" is enough. The coordinator makes an
// admin token, keeps it beside the database, logs the file's path but not the token, and
// uses the same token on the next start.
func TestStartsWithoutAdminToken(t *testing.T) {
	for _, v := range []string{"NEXODUS_ADMIN_TOKEN", "NEXODUS_RELAY_SECRET", "NEXODUS_SEAL_KEY"} {
		t.Setenv(v, "")
	}
	db := filepath.Join(t.TempDir(), "nexodus.db")
	url, logs, stop := start(t, "-listen", "127.0.0.1:0", "-db", db)
	tokenFile := db + adminTokenSuffix
	data, err := os.ReadFile(tokenFile)
	require.NoError(t, err, "admin token file")
	tok := strings.TrimSpace(string(data))
	assert.Contains(t, logs.String(), tokenFile, "the log names the token file")
	assert.NotContains(t, logs.String(), tok, "the log shows the admin token")
	require.Equal(t, 201, post(t, url+api.Prefix+"/users", tok, api.CreateUserRequest{Username: "alice"}),
		"create user with the generated admin token")
	stop()

	url, _, stop = start(t, "-listen", "127.0.0.1:0", "-db", db)
	defer stop()
	require.Equal(t, 409, post(t, url+api.Prefix+"/users", tok, api.CreateUserRequest{Username: "alice"}),
		"after a restart the same token and the same user are there")
}

func TestHTTPServerTimeouts(t *testing.T) {
	hs := newHTTPServer(http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	assert.Positive(t, hs.ReadHeaderTimeout, "ReadHeaderTimeout")
	assert.Positive(t, hs.ReadTimeout, "ReadTimeout")
	assert.Positive(t, hs.IdleTimeout, "IdleTimeout")
	assert.Zero(t, hs.WriteTimeout, "WriteTimeout would cut event streams")
}

// TestShortAdminTokenRefused: the admin token has at least 16 characters whether it comes from
// the flag, the environment or the file.
func TestShortAdminTokenRefused(t *testing.T) {
	db := filepath.Join(t.TempDir(), "nexodus.db")
	t.Setenv("NEXODUS_ADMIN_TOKEN", "")
	err := run(t.Context(), []string{"-listen", "127.0.0.1:0", "-db", db, "-admin-token", "x"}, &syncBuffer{})
	assert.ErrorContains(t, err, "-admin-token has fewer than 16 characters")
	t.Setenv("NEXODUS_ADMIN_TOKEN", "fifteen-chars-x")
	err = run(t.Context(), []string{"-listen", "127.0.0.1:0", "-db", db}, &syncBuffer{})
	assert.ErrorContains(t, err, "NEXODUS_ADMIN_TOKEN has fewer than 16 characters")
	t.Setenv("NEXODUS_ADMIN_TOKEN", "")
	require.NoError(t, os.WriteFile(db+adminTokenSuffix, []byte("short\n"), 0o600))
	err = run(t.Context(), []string{"-listen", "127.0.0.1:0", "-db", db}, &syncBuffer{})
	assert.ErrorContains(t, err, "at least 16 characters")
}

// TestLimitFlags: the rate limits and trusted proxies are flags; a bad value is refused.
func TestLimitFlags(t *testing.T) {
	t.Setenv("NEXODUS_ADMIN_TOKEN", "")
	db := filepath.Join(t.TempDir(), "nexodus.db")
	for _, args := range [][]string{
		{"-limit-signals", "fast"}, {"-limit-moves", "1/m,0"}, {"-trusted-proxies", "10.0.0.0/33"},
		{"-limit-signal-bytes", "1000/s,1000"}, // a burst below the largest signal
	} {
		err := run(t.Context(), append([]string{"-listen", "127.0.0.1:0", "-db", db}, args...), &syncBuffer{})
		assert.Error(t, err, "%q", args)
	}
	url, _, stop := start(t, "-listen", "127.0.0.1:0", "-db", db, "-limit-sources", "1/h,2",
		"-limit-requests", "off", "-trusted-proxies", "10.0.0.0/8,fd00::/8")
	defer stop()
	statuses := make([]int, 3)
	for i := range statuses {
		statuses[i] = post(t, url+api.Prefix+"/users", "bad-token-0123456789", api.CreateUserRequest{Username: "x"})
	}
	assert.Equal(t, []int{401, 401, 429}, statuses, "-limit-sources 1/h,2: two failures, then throttled")
}
