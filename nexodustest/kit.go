// Package nexodustest runs a whole Nexodus network inside one go test: a coordinator on a
// temporary SQLite file, a TURN relay, a user with an organization and a registration key, and
// Nodes that are up and know each other. Nothing in it is a stand-in: the coordinator serves
// real HTTP on 127.0.0.1, the relay real STUN and TURN on UDP, and the Nodes run real WireGuard.
//
// Everything a Kit makes is closed by t.Cleanup, after which the Kit checks that none of its
// goroutines is left. Use it to test an application that embeds a Node:
//
//	func TestMyService(t *testing.T) {
//		kit := nexodustest.New(t)
//		srv, cli := kit.Up("srv"), kit.Up("cli")
//		ln, _ := srv.Listen("tcp", ":80")
//		go http.Serve(ln, myHandler)
//		resp, err := cli.HTTPClient().Get("http://srv/")
//		...
//	}
//
// The helpers below a Kit force pairs of Nodes through the relay, wait for a path of a given
// kind, and call the coordinator's API as its admin.
package nexodustest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
	"github.com/nexodus-sdk/nexodus/coordinator"
	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
	"github.com/nexodus-sdk/nexodus/relay"
)

// Timeout bounds each of the Kit's network calls and waits, so that a hang fails the test
// instead of stalling the run.
const Timeout = 60 * time.Second

// Kit is a coordinator, a relay and a user, ready to make Nodes.
type Kit struct {
	// URL is the coordinator's base URL ("http://127.0.0.1:port").
	URL string
	// AdminToken is the coordinator's admin bearer token.
	AdminToken string
	// User is the first user; AuthKey a reusable registration key of its personal organization,
	// which Node uses unless told otherwise.
	User    User
	AuthKey string
	// Relay is the TURN relay the coordinator hands its devices; nil with WithoutRelay.
	Relay *relay.Server

	t           testing.TB
	opts        options
	dbPath      string
	ctx         context.Context
	relaySecret []byte

	mu      sync.Mutex
	srv     *coordinator.Server
	store   *sqlite.Store
	hs      *http.Server
	served  chan struct{}
	clients []*client.Client
}

// User is a user of the coordinator with an API token.
type User struct {
	ID       string
	Username string
	// OrgID is the user's personal organization.
	OrgID string
	Token string
	// Client calls the API as the user.
	Client *client.Client
}

type options struct {
	logger    *slog.Logger
	relay     bool
	leakCheck bool
	configure func(*coordinator.Config)
	username  string
}

// Option changes what New builds.
type Option func(*options)

// WithLogger sends the coordinator's, the relay's and the Nodes' logs to l. By default they are
// discarded, unless the environment variable NEXODUS_TEST_LOG is set, which sends them to
// standard error at debug level.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithoutRelay starts no relay: Nodes get no TURN servers.
func WithoutRelay() Option { return func(o *options) { o.relay = false } }

// WithoutLeakCheck skips the goroutine check at cleanup, for tests that run in parallel
// (t.Parallel) or keep goroutines of their own past the test.
func WithoutLeakCheck() Option { return func(o *options) { o.leakCheck = false } }

// WithCoordinatorConfig lets f adjust the coordinator's configuration before it starts (its
// relays, STUN servers, clock, ...). It runs again on every RestartCoordinator.
func WithCoordinatorConfig(f func(*coordinator.Config)) Option {
	return func(o *options) { o.configure = f }
}

// WithUsername names the first user (default "alice").
func WithUsername(name string) Option { return func(o *options) { o.username = name } }

// New starts a coordinator and a relay and creates a user with a registration key. It fails
// the test on any error.
func New(t testing.TB, opts ...Option) *Kit {
	t.Helper()
	o := options{relay: true, leakCheck: true, username: "alice"}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = defaultLogger(t)
	}
	if o.leakCheck {
		// Registered first, so it runs last: after every Node, the relay and the coordinator
		// are closed.
		ignore := goleak.IgnoreCurrent()
		t.Cleanup(func() {
			if !t.Failed() {
				require.NoError(t, goleak.Find(ignore), "goroutines left after the kit closed")
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	k := &Kit{t: t, opts: o, ctx: ctx, dbPath: filepath.Join(t.TempDir(), "coordinator.db")}
	tok := make([]byte, 16)
	_, err := rand.Read(tok)
	require.NoError(t, err)
	k.AdminToken = hex.EncodeToString(tok)

	if o.relay {
		k.startRelay()
	}
	require.NoError(t, k.startCoordinator("127.0.0.1:0"))
	t.Cleanup(k.close)
	k.User = k.NewUser(o.username)
	k.AuthKey = k.RegKey(k.User, "")
	return k
}

func defaultLogger(t testing.TB) *slog.Logger {
	if os.Getenv("NEXODUS_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

// Context is bounded by Timeout and ends with the test.
func (k *Kit) Context() context.Context { return k.ctx }

// Logger is where the Kit's parts log.
func (k *Kit) Logger() *slog.Logger { return k.opts.logger }

func (k *Kit) startRelay() {
	secret := make([]byte, 32)
	_, err := rand.Read(secret)
	require.NoError(k.t, err)
	r, err := relay.New(k.ctx, relay.Config{
		Secret:    secret,
		PublicIP:  netip.MustParseAddr("127.0.0.1"),
		UDPListen: []string{"127.0.0.1:0"},
		Logger:    k.opts.logger.With("component", "relay"),
	})
	require.NoError(k.t, err, "start relay")
	k.Relay = r
	k.relaySecret = secret
	k.t.Cleanup(func() { r.Close() })
}

func (k *Kit) startCoordinator(addr string) error {
	st, err := sqlite.Open(k.ctx, k.dbPath)
	if err != nil {
		return fmt.Errorf("nexodustest: %w", err)
	}
	cfg := coordinator.Config{Store: st, AdminToken: k.AdminToken, Logger: k.opts.logger.With("component", "coordinator")}
	if k.Relay != nil {
		cfg.RelaySecret = k.relaySecret
		cfg.TURNServers = []string{"turn:" + k.Relay.Addrs().UDP[0].String() + "?transport=udp"}
	}
	if k.opts.configure != nil {
		k.opts.configure(&cfg)
	}
	srv, err := coordinator.New(k.ctx, cfg)
	if err != nil {
		st.Close()
		return fmt.Errorf("nexodustest: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(k.ctx, "tcp", addr)
	if err != nil {
		srv.Close()
		st.Close()
		return fmt.Errorf("nexodustest: listen: %w", err)
	}
	// As the coordinator binary serves it: no WriteTimeout, event streams bound each write.
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	served := make(chan struct{})
	go func() {
		defer close(served)
		hs.Serve(ln)
	}()
	k.mu.Lock()
	k.srv, k.store, k.hs, k.served = srv, st, hs, served
	k.URL = "http://" + ln.Addr().String()
	k.mu.Unlock()
	return nil
}

// stopCoordinator cuts open event streams and closes the database.
func (k *Kit) stopCoordinator() error {
	k.mu.Lock()
	hs, srv, st, served := k.hs, k.srv, k.store, k.served
	k.hs = nil
	k.mu.Unlock()
	if hs == nil {
		return fmt.Errorf("nexodustest: coordinator: %w", net.ErrClosed)
	}
	err := hs.Close()
	<-served
	return errors.Join(err, srv.Close(), st.Close())
}

// RestartCoordinator stops the coordinator and starts it again on the same address and
// database file, as an operator restarting the process would. Nodes see their event streams
// drop and reconnect.
func (k *Kit) RestartCoordinator() {
	k.t.Helper()
	if err := k.stopCoordinator(); err != nil && !errors.Is(err, net.ErrClosed) {
		require.NoError(k.t, err, "stop coordinator")
	}
	require.NoError(k.t, k.startCoordinator(k.URL[len("http://"):]), "restart coordinator")
}

// StopCoordinator stops the coordinator until StartCoordinator (an outage).
func (k *Kit) StopCoordinator() {
	k.t.Helper()
	require.NoError(k.t, k.stopCoordinator(), "stop coordinator")
}

// StartCoordinator starts a stopped coordinator again on the same address and database.
func (k *Kit) StartCoordinator() {
	k.t.Helper()
	require.NoError(k.t, k.startCoordinator(k.URL[len("http://"):]), "start coordinator")
}

// Server is the running coordinator, for its Go API.
func (k *Kit) Server() *coordinator.Server {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.srv
}

func (k *Kit) close() {
	if err := k.stopCoordinator(); err != nil && !errors.Is(err, net.ErrClosed) {
		k.t.Errorf("nexodustest: stop coordinator: %v", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range k.clients {
		c.CloseIdleConnections()
	}
}

// Client returns an API client of the coordinator authenticated with token.
func (k *Kit) Client(token string) *client.Client {
	k.t.Helper()
	c, err := client.New(k.URL, client.WithToken(token), client.WithLogger(k.opts.logger))
	require.NoError(k.t, err)
	k.mu.Lock()
	k.clients = append(k.clients, c)
	k.mu.Unlock()
	return c
}

// Admin returns an API client with the admin token.
func (k *Kit) Admin() *client.Client { return k.Client(k.AdminToken) }

// NewUser creates a user with a personal organization and an API token.
func (k *Kit) NewUser(username string) User {
	k.t.Helper()
	admin := k.Admin()
	u, err := admin.CreateUser(k.ctx, api.CreateUserRequest{Username: username})
	require.NoError(k.t, err, "create user %s", username)
	tok, err := admin.CreateToken(k.ctx, u.User.ID, api.CreateTokenRequest{Description: "nexodustest"})
	require.NoError(k.t, err, "create token for %s", username)
	return User{
		ID: u.User.ID, Username: username, OrgID: u.PersonalOrganizationID,
		Token: tok.Secret, Client: k.Client(tok.Secret),
	}
}

// RegKey creates a reusable registration key for an organization of u (its personal one when
// orgID is empty) and returns its secret.
func (k *Kit) RegKey(u User, orgID string) string {
	k.t.Helper()
	if orgID == "" {
		orgID = u.OrgID
	}
	key, err := u.Client.CreateRegKey(k.ctx, api.CreateRegKeyRequest{OrganizationID: orgID, Description: "nexodustest"})
	require.NoError(k.t, err, "create registration key")
	return key.Secret
}

// NewOrganization creates an organization owned by u and returns its ID and a reusable
// registration key for it.
func (k *Kit) NewOrganization(u User, name string) (orgID, authKey string) {
	k.t.Helper()
	org, err := u.Client.CreateOrganization(k.ctx, api.CreateOrganizationRequest{Name: name})
	require.NoError(k.t, err, "create organization %s", name)
	return org.ID, k.RegKey(u, org.ID)
}
