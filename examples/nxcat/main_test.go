package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/nexodus-sdk/nexodus"
	"github.com/nexodus-sdk/nexodus/nexodustest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a bytes.Buffer safe to read while a command writes it.
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

func noEnv(string) string { return "" }

func TestListenDialStatus(t *testing.T) {
	kit := nexodustest.New(t, nexodustest.WithUsername("ops"), nexodustest.WithoutRelay())
	ctx := kit.Context()
	common := []string{"-control", kit.URL, "-authkey", kit.AuthKey}

	// The server runs until its context is cancelled.
	srvCtx, stopSrv := context.WithCancel(ctx)
	var srvOut, srvErr syncBuffer
	srvDone := make(chan int, 1)
	go func() {
		args := append(append([]string{}, common...), "-hostname", "srv", "listen", "-echo", "7000")
		srvDone <- run(srvCtx, args, strings.NewReader(""), &srvOut, &srvErr, noEnv)
	}()
	require.Eventually(t, func() bool { return strings.Contains(srvErr.String(), "listening on") },
		30*time.Second, 10*time.Millisecond, "server did not start")

	var out, errOut bytes.Buffer
	args := append(append([]string{}, common...), "-hostname", "cli", "dial", "srv:7000")
	code := run(ctx, args, strings.NewReader("hello mesh\n"), &out, &errOut, noEnv)
	require.Zero(t, code, "dial exit code: %s", errOut.String())
	require.Equal(t, "hello mesh\n", out.String(), "dial's output: the echo")
	require.Contains(t, srvOut.String(), "hello mesh", "the server's output")

	out.Reset()
	args = append(append([]string{}, common...), "-hostname", "ops", "status", "-o", "json", "-wait", "1")
	code = run(ctx, args, nil, &out, &errOut, noEnv)
	require.Zero(t, code, "status exit code: %s", errOut.String())
	var st nexodus.Status
	require.NoError(t, json.Unmarshal(out.Bytes(), &st), "status -o json:\n%s", out.String())
	require.Len(t, st.Peers, 1, "status peers: %+v", st.Peers)
	require.Equal(t, "srv", st.Peers[0].Hostname, "status peers: %+v", st.Peers)
	require.Equal(t, nexodus.PathDirect, st.Peers[0].Path, "status peers: %+v", st.Peers)

	stopSrv()
	require.Zero(t, <-srvDone, "server exit code: %s", srvErr.String())
}

func TestErrorsExitNonZero(t *testing.T) {
	kit := nexodustest.New(t, nexodustest.WithUsername("ops"), nexodustest.WithoutRelay())
	ctx, key := kit.Context(), kit.AuthKey
	coord := kit // its URL is the coordinator's

	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no command", []string{"-control", coord.URL, "-authkey", key}, 2, "usage"},
		{"bad key", []string{"-control", coord.URL, "-authkey", "nxk_x.y", "-hostname", "a", "status"}, 1, "unauthorized"},
		{"bad url", []string{"-control", "nope", "-authkey", key, "-hostname", "a", "status"}, 1, "ControlURL"},
		{"unknown peer", []string{"-control", coord.URL, "-authkey", key, "-hostname", "a", "dial", "ghost:1"}, 1, "no such peer"},
		{"bad port", []string{"-control", coord.URL, "-authkey", key, "-hostname", "a", "listen", "99999"}, 2, "bad port"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(ctx, tc.args, strings.NewReader(""), &out, &errOut, noEnv)
			assert.Equal(t, tc.code, code, "exit code (stderr %q)", errOut.String())
			assert.Contains(t, strings.ToLower(errOut.String()), strings.ToLower(tc.msg), "stderr, case-insensitively")
		})
	}
}

// A command line that cannot run fails before the node registers: no request reaches the
// coordinator, so a typo leaves no device behind and does not wait for a slow coordinator.
func TestBadCommandLineTouchesNoCoordinator(t *testing.T) {
	var requests atomic.Int64
	coord := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "not here", http.StatusServiceUnavailable)
	}))
	defer coord.Close()
	base := []string{"-control", coord.URL, "-authkey", "nxk_x.y", "-hostname", "a"}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"lisen", "7000"}, `unknown command "lisen"`},
		{[]string{"listen", "99999"}, "bad port"},
		{[]string{"listen"}, "listen takes one PORT"},
		{[]string{"listen", "-ech", "7000"}, "flag provided but not defined"},
		{[]string{"dial"}, "dial takes one HOST:PORT"},
		{[]string{"dial", "srv"}, "missing port"},
		{[]string{"status", "-o", "yaml"}, "unknown output format"},
		{[]string{"status", "extra"}, "status takes no arguments"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), append(append([]string{}, base...), tc.args...), strings.NewReader(""), &out, &errOut, noEnv)
		assert.Equal(t, 2, code, "%q: exit code (stderr %q)", tc.args, errOut.String())
		assert.Contains(t, errOut.String(), tc.msg, "%q: stderr", tc.args)
	}
	n := requests.Load()
	require.Zero(t, n, "%d requests reached the coordinator for command lines that cannot run", n)
}
