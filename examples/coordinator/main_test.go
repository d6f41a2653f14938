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
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
)

func TestAdminTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db"+adminTokenSuffix)
	tok, created, err := loadOrCreateAdminToken(path)
	if err != nil || !created || len(tok) < 32 {
		t.Fatalf("first start: %q %v %v", tok, created, err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", info.Mode().Perm())
	}
	again, created, err := loadOrCreateAdminToken(path)
	if err != nil || created || again != tok {
		t.Fatalf("second start: %q %v %v, want the same token", again, created, err)
	}
	// A token file others can read is refused rather than used.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadOrCreateAdminToken(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("readable token file: %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadOrCreateAdminToken(empty); err == nil {
		t.Error("an empty token file was accepted")
	}
	if _, _, err := loadOrCreateAdminToken(filepath.Join(t.TempDir(), "missing", "x")); err == nil {
		t.Error("a token file in a missing directory was accepted")
	}
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
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := listeningRE.FindStringSubmatch(logs.String()); m != nil {
			url = "http://" + m[1]
			break
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("run ended before listening: %v\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("not listening after 20s:\n%s", logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return url, logs, func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v\n%s", err, logs)
		}
	}
}

func post(t *testing.T, url, token string, body any) int {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
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
	if err != nil {
		t.Fatalf("admin token file: %v", err)
	}
	tok := strings.TrimSpace(string(data))
	if !strings.Contains(logs.String(), tokenFile) {
		t.Errorf("the log does not name the token file:\n%s", logs)
	}
	if strings.Contains(logs.String(), tok) {
		t.Errorf("the log shows the admin token:\n%s", logs)
	}
	if st := post(t, url+api.Prefix+"/users", tok, api.CreateUserRequest{Username: "alice"}); st != 201 {
		t.Fatalf("create user with the generated admin token: %d", st)
	}
	stop()

	url, _, stop = start(t, "-listen", "127.0.0.1:0", "-db", db)
	defer stop()
	if st := post(t, url+api.Prefix+"/users", tok, api.CreateUserRequest{Username: "alice"}); st != 409 {
		t.Fatalf("after a restart the same token and the same user should be there: %d", st)
	}
}

func TestHTTPServerTimeouts(t *testing.T) {
	hs := newHTTPServer(http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if hs.ReadHeaderTimeout <= 0 || hs.ReadTimeout <= 0 || hs.IdleTimeout <= 0 {
		t.Errorf("timeouts: header %v, read %v, idle %v: want all set", hs.ReadHeaderTimeout, hs.ReadTimeout, hs.IdleTimeout)
	}
	if hs.WriteTimeout != 0 {
		t.Errorf("WriteTimeout %v would cut event streams", hs.WriteTimeout)
	}
}
