// Package devcoord runs a complete coordinator inside the process — a real SQLite file and a
// real HTTP listener on 127.0.0.1 — and bootstraps users and registration keys on it. The demo,
// the examples' tests and the facade's tests use it; nothing in it is a stand-in.
package devcoord

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
	"github.com/nexodus-sdk/nexodus/coordinator"
	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
)

// Options tune the coordinator. The zero value listens on a free port of 127.0.0.1.
type Options struct {
	// Addr is the listen address; default "127.0.0.1:0".
	Addr string
	// Logger receives the coordinator's logs; nil discards them.
	Logger *slog.Logger
	// Configure, if set, adjusts the coordinator's configuration before it starts.
	Configure func(*coordinator.Config)
}

// Coordinator is a running in-process coordinator.
type Coordinator struct {
	// URL is the coordinator's base URL, e.g. "http://127.0.0.1:41234".
	URL string
	// AdminToken is the admin bearer token.
	AdminToken string

	dbPath string
	opts   Options

	mu    sync.Mutex
	store *sqlite.Store
	srv   *coordinator.Server
	hs    *http.Server
	done  chan struct{}
}

// Start opens (or creates) the SQLite database at dbPath and serves the coordinator on it.
func Start(ctx context.Context, dbPath string, opts Options) (*Coordinator, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return nil, fmt.Errorf("devcoord: admin token: %w", err)
	}
	c := &Coordinator{AdminToken: hex.EncodeToString(tok), dbPath: dbPath, opts: opts}
	if err := c.start(ctx, opts.Addr); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Coordinator) start(ctx context.Context, addr string) error {
	st, err := sqlite.Open(ctx, c.dbPath)
	if err != nil {
		return fmt.Errorf("devcoord: %w", err)
	}
	cfg := coordinator.Config{Store: st, AdminToken: c.AdminToken, Logger: c.opts.Logger}
	if c.opts.Configure != nil {
		c.opts.Configure(&cfg)
	}
	srv, err := coordinator.New(ctx, cfg)
	if err != nil {
		st.Close()
		return fmt.Errorf("devcoord: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		srv.Close()
		st.Close()
		return fmt.Errorf("devcoord: listen: %w", err)
	}
	// As the coordinator binary serves it: ReadTimeout does not end event streams (net/http
	// lifts the read deadline once a bodyless request is read); no WriteTimeout, streams bound
	// each write themselves.
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	done := make(chan struct{})
	go func() {
		defer close(done)
		hs.Serve(ln)
	}()
	c.mu.Lock()
	c.store, c.srv, c.hs, c.done = st, srv, hs, done
	c.URL = "http://" + ln.Addr().String()
	c.mu.Unlock()
	return nil
}

// Close stops the coordinator: open event streams are cut, the database is closed.
func (c *Coordinator) Close() error {
	c.mu.Lock()
	hs, srv, st, done := c.hs, c.srv, c.store, c.done
	c.hs = nil
	c.mu.Unlock()
	if hs == nil {
		return fmt.Errorf("devcoord: %w", net.ErrClosed)
	}
	err := hs.Close()
	<-done
	return errors.Join(err, srv.Close(), st.Close())
}

// Restart stops the coordinator (if it is running) and starts it again on the same address
// and database file, as an operator restarting the process would.
func (c *Coordinator) Restart(ctx context.Context) error {
	addr := c.URL[len("http://"):]
	if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	// The port was just released; another process could take it, but on loopback in a test
	// that is a real failure worth reporting rather than hiding.
	return c.start(ctx, addr)
}

// Server returns the coordinator (for tests that need its Go API).
func (c *Coordinator) Server() *coordinator.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.srv
}

// Client returns an API client for the coordinator authenticated with token.
func (c *Coordinator) Client(token string) (*client.Client, error) {
	cl, err := client.New(c.URL, client.WithToken(token), client.WithLogger(c.opts.Logger))
	if err != nil {
		return nil, fmt.Errorf("devcoord: %w", err)
	}
	return cl, nil
}

// Tenant is a user with an API token and a personal organization.
type Tenant struct {
	UserID   string
	Username string
	// OrgID is the user's personal organization.
	OrgID string
	Token string
	// Client is authenticated as the user.
	Client *client.Client
}

// NewTenant creates a user and an API token for it.
func (c *Coordinator) NewTenant(ctx context.Context, username string) (*Tenant, error) {
	admin, err := c.Client(c.AdminToken)
	if err != nil {
		return nil, err
	}
	u, err := admin.CreateUser(ctx, api.CreateUserRequest{Username: username})
	if err != nil {
		return nil, fmt.Errorf("devcoord: create user %s: %w", username, err)
	}
	tok, err := admin.CreateToken(ctx, u.User.ID, api.CreateTokenRequest{Description: "devcoord"})
	if err != nil {
		return nil, fmt.Errorf("devcoord: create token for %s: %w", username, err)
	}
	uc, err := c.Client(tok.Secret)
	if err != nil {
		return nil, err
	}
	return &Tenant{
		UserID: u.User.ID, Username: username, OrgID: u.PersonalOrganizationID,
		Token: tok.Secret, Client: uc,
	}, nil
}

// RegKey creates a reusable registration key for the organization (the tenant's personal one
// when orgID is empty) and returns its secret.
func (t *Tenant) RegKey(ctx context.Context, orgID string) (string, error) {
	if orgID == "" {
		orgID = t.OrgID
	}
	k, err := t.Client.CreateRegKey(ctx, api.CreateRegKeyRequest{OrganizationID: orgID, Description: "devcoord"})
	if err != nil {
		return "", fmt.Errorf("devcoord: create registration key: %w", err)
	}
	return k.Secret, nil
}
