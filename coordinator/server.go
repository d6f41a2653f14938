// Package coordinator is the reference Nexodus coordinator: users, organizations, invitations,
// registration keys, devices with their tunnel addresses, signaling and event streams, served
// as the HTTP API described in package api over a [store.Store].
//
// # Authorization model
//
// Every route first checks the kind of credential (admin token, user token, registration key,
// device token); a credential of the wrong kind gets 403 forbidden before any resource is looked
// up, so that answer reveals nothing. Then the resource is looked up from the caller's point of
// view: a resource in an organization the caller cannot see (a user who is not a member, a
// device token of another organization) answers 404 not_found, exactly as if it did not exist,
// so organizations never learn about each other. A caller who can see the resource but lacks the
// role (a member attempting an owner's action, a device acting on a peer device, an owner
// accepting an invitation meant for someone else) gets 403 forbidden.
//
// The admin token is a bootstrap credential for user management only (create and list users,
// issue user tokens); it cannot read or change organizations or devices.
//
// # Responses
//
// Creating answers 201 with the new resource (POST /users, /users/{id}/tokens, /organizations,
// /invitations, /reg-keys, and /devices for a new device; re-registering a known public key
// answers 200 with the same device and addresses and a fresh sealed token, see Decisions).
// Reads, PATCH and PUT /organizations/{id}/relays (create or replace) answer 200 with the
// resource; accept and decline answer 200 with the invitation in its new state. DELETE routes
// (including revoking an invitation) and POST /devices/{id}/signal answer 204 without a body.
// Acting on an invitation that is not pending answers 410 gone.
//
// Role rules: the organization's creator (OwnerID) cannot be removed or leave; members with the
// owner role (the creator, or users who accepted an owner invitation) may delete the
// organization, invite, revoke, manage registration keys and the organization's relays, remove
// other members and delete any device of the organization. A personal organization cannot be deleted (403).
//
// # Decisions
//
//   - Re-registration needs proof of possession. Anyone who may register into an organization
//     (its registration key, any member) can name any of its devices' public keys, which peer
//     lists show. So re-registering a known key applies nothing unless the caller is the
//     device's owner with their user token: the answer carries the device as it is and a new
//     token sealed to its public key (api.RegisterDeviceResponse.Pending). That token is
//     pending: the current one keeps working until the pending one is first used, which only
//     the private-key holder can do; then it becomes the device's token and the old one
//     stops working. The node sets its hostname and endpoints with PATCH. A second
//     re-registration replaces an unused pending token. The owner's own re-registration
//     applies the request and replaces the token at once.
//   - A registration key acts for the owner who made it: it stops working while that user is
//     not a member of the key's organization.
//   - Only personal organizations' names are unique (they are usernames). Another
//     organization may not take a username as its name but may share a name with any other
//     organization, so names reveal nothing about other organizations and nobody can keep a
//     future user from being created.
//   - A request whose client disconnects before the answer is not a server failure: it is
//     logged at debug level with status 499, never as a 5xx.
//   - Hostnames are unique (case-insensitively) within an organization, so peers can dial each
//     other by hostname; a clash answers 409 conflict.
//   - Removing a member (or a member leaving) deletes the devices that user owns in that
//     organization, each with a device.removed event. Registration keys the user created stay
//     but do not work while the user is not a member (see above).
//   - Deleting an organization deletes its devices, keys, invitations and event log; open event
//     streams of the organization and its devices end.
//   - Organization IPv4 blocks: an organization created without a CIDR gets the /16 (see
//     [Config.OrgPrefixLen]) of the pool used by the fewest organizations, lowest first, so the
//     first 64 organizations of the default pool get distinct blocks and later ones share blocks
//     (organizations are separate address spaces, so overlap between them is harmless).
//   - "Online" is kept in memory per coordinator process: a device is online while its event
//     stream is connected. Ephemeral devices are deleted after their stream has been gone for
//     [Config.EphemeralGrace] (also when they never connect, counted from registration or from
//     coordinator start). A connected ephemeral device's stream records LastSeenAt in the
//     store now and then, so replicas sharing a store do not delete a device connected to
//     another replica. Other devices are never deleted for being offline. Going online or
//     offline appends no event; GET and sync events show it.
//   - Event streams: a fresh stream starts with a sync event (the full device list, with the
//     current revision as its ID); Last-Event-ID resumes after that revision, or starts with a
//     sync when the log no longer reaches back that far. A moved device's stream follows it: the
//     move appends a sync addressed to the device in the new organization's log. A stream ends
//     when its device is deleted (after delivering its own device.removed), when the device
//     token it was opened with is replaced, or when its user stops being a member; access is
//     re-checked on every wake-up and every heartbeat. An http.Server's ReadTimeout does not
//     end streams (net/http lifts the read deadline once a bodyless request is read), so
//     serve the coordinator with ReadHeaderTimeout, ReadTimeout and IdleTimeout set, but no
//     WriteTimeout: streams bound each write themselves (Config.StreamWriteTimeout).
//   - GET /devices/{id}/relay answers the device itself (its own token; a user token or another
//     device's gets 403, a device of another organization 404) with its organization's own
//     relays (PUT /organizations/{id}/relays, owner only; GET for members shows the servers,
//     never the secret) or else Config.STUNServers and Config.TURNServers, and TURN REST
//     credentials minted from the organization's secret or Config.RelaySecret, valid for
//     Config.RelayCredentialTTL. The same is pushed on the device's event stream as a relay
//     event: after connecting, at half the credentials' lifetime, and when the organization's
//     relays change. Relay events are not logged (no revision, never replayed: the log is no
//     place for credentials). A deleted device's token stops working, so it gets no more
//     credentials. Organization relay secrets are sealed with Config.SealKey when it is set.
//   - Advertised child prefixes must be canonical and must not overlap the organization's own
//     IPv4 CIDR or IPv6 prefix; overlaps between devices' child prefixes are not checked.
package coordinator

import (
	"context"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// Config configures a coordinator. The zero value of every field but Store is a sensible
// default.
type Config struct {
	// Store is the database. Required. Close does not close it.
	Store store.Store
	// AdminToken is the bootstrap admin credential. Empty disables the admin token.
	AdminToken string
	// Authenticator, when set, authenticates bearer tokens of other schemes (e.g. OIDC).
	Authenticator Authenticator
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// IPv4Pool is where organizations created without a CIDR get theirs. Default 100.64.0.0/10.
	IPv4Pool netip.Prefix
	// OrgPrefixLen is the size of the IPv4 block each such organization gets. Default 16.
	OrgPrefixLen int
	// InvitationTTL is how long an invitation stays valid by default. Default 7 days.
	InvitationTTL time.Duration
	// EventRetention is how long events are kept for stream resumption. Default 24h.
	EventRetention time.Duration
	// Heartbeat is the interval of comment lines on idle event streams. Default 15s.
	Heartbeat time.Duration
	// StreamWriteTimeout bounds each write to an event stream; a client that does not read is
	// dropped. Default 30s.
	StreamWriteTimeout time.Duration
	// EphemeralGrace is how long an ephemeral device may stay without a connected event stream
	// before it is deleted. Default 60s.
	EphemeralGrace time.Duration
	// SweepInterval is how often the background sweeper prunes old events and deletes
	// disconnected ephemeral devices. Default 10s.
	SweepInterval time.Duration
	// Now is the clock; nil means time.Now. Tests inject a fake clock to test expiry.
	Now func() time.Time

	// STUNServers are the "host:port" STUN servers devices are told to use (the relays' UDP
	// listeners; two ports on one host let devices detect a symmetric NAT).
	STUNServers []string
	// TURNServers are the TURN URLs devices are told to use, e.g.
	// "turn:198.51.100.10:3478?transport=udp", "turns:relay.example.com:5349?transport=tcp".
	// They need RelaySecret.
	TURNServers []string
	// RelaySecret is the secret shared with the relays; TURN credentials are minted from it.
	// Empty: devices get STUN servers only.
	RelaySecret []byte
	// RelayCredentialTTL is how long minted TURN credentials are valid. Default 12h. Devices
	// get fresh ones on their event stream when half of it has passed.
	RelayCredentialTTL time.Duration
	// SealKey, 32 random bytes, seals the secrets the coordinator must be able to read back
	// (organizations' relay secrets, which mint credentials by HMAC) before they are stored.
	// Empty: they are stored as given, protected only by access to the database. Changing it
	// makes secrets sealed under the old key unreadable until they are set again.
	SealKey []byte
}

// Server is a coordinator. It is an http.Handler serving the whole API.
type Server struct {
	cfg       Config
	store     store.Store
	log       *slog.Logger
	mux       *http.ServeMux
	auth      Authenticator
	adminHash []byte
	hub       *hub
	sealer    cipher.AEAD // seals organization relay secrets; nil without Config.SealKey

	bgCancel context.CancelFunc
	bgWG     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	streams sync.WaitGroup
}

// New validates cfg, loads what the coordinator keeps in memory and starts its background
// goroutines. Call Close to stop them.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("coordinator: Config.Store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if !cfg.IPv4Pool.IsValid() {
		cfg.IPv4Pool = netip.MustParsePrefix("100.64.0.0/10")
	}
	if !cfg.IPv4Pool.Addr().Is4() || cfg.IPv4Pool != cfg.IPv4Pool.Masked() {
		return nil, fmt.Errorf("coordinator: IPv4Pool %s must be a masked IPv4 prefix", cfg.IPv4Pool)
	}
	if cfg.OrgPrefixLen == 0 {
		cfg.OrgPrefixLen = max(16, cfg.IPv4Pool.Bits())
	}
	if cfg.OrgPrefixLen < cfg.IPv4Pool.Bits() || cfg.OrgPrefixLen > 30 || cfg.OrgPrefixLen-cfg.IPv4Pool.Bits() > 20 {
		return nil, fmt.Errorf("coordinator: OrgPrefixLen %d does not fit IPv4Pool %s (at most 2^20 blocks, at most /30)", cfg.OrgPrefixLen, cfg.IPv4Pool)
	}
	if cfg.InvitationTTL <= 0 {
		cfg.InvitationTTL = 7 * 24 * time.Hour
	}
	if cfg.EventRetention <= 0 {
		cfg.EventRetention = 24 * time.Hour
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.StreamWriteTimeout <= 0 {
		cfg.StreamWriteTimeout = 30 * time.Second
	}
	if cfg.EphemeralGrace <= 0 {
		cfg.EphemeralGrace = 60 * time.Second
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := validateRelayConfig(&cfg); err != nil {
		return nil, err
	}
	sealer, err := newSealer(cfg.SealKey)
	if err != nil {
		return nil, err
	}
	cfg.SealKey = nil // the derived AEAD is all the server keeps
	s := &Server{
		sealer:  sealer,
		cfg:     cfg,
		store:   cfg.Store,
		log:     cfg.Logger,
		closing: make(chan struct{}),
		hub:     newHub(),
	}
	if cfg.AdminToken != "" {
		h := sha256.Sum256([]byte(cfg.AdminToken))
		s.adminHash = h[:]
	}
	s.auth = tokenAuthenticator{s}
	if err := s.loadEphemeral(ctx); err != nil {
		return nil, fmt.Errorf("coordinator: load devices: %w", err)
	}
	s.routes()

	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.bgCancel = cancel
	sub, unsub := s.store.Subscribe()
	s.bgWG.Add(2)
	go func() {
		defer s.bgWG.Done()
		defer unsub()
		s.hub.run(bg, sub)
	}()
	go func() {
		defer s.bgWG.Done()
		s.sweeper(bg)
	}()
	return s, nil
}

// Close stops the background goroutines and ends open event streams, waiting for them. It does
// not close the Store. Calling it again does nothing.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	s.bgCancel()
	s.bgWG.Wait()
	s.streams.Wait()
	return nil
}

// now is the coordinator's clock in UTC.
func (s *Server) now() time.Time { return s.cfg.Now().UTC() }

// handler is a route's handler: it returns an error instead of writing one.
type handler func(w http.ResponseWriter, r *http.Request, p Principal) error

func (s *Server) routes() {
	mux := http.NewServeMux()
	handle := func(pattern string, h handler) {
		mux.Handle(pattern, s.authed(h))
	}
	p := func(method, path string) string { return method + " " + api.Prefix + path }

	handle(p("POST", "/users"), s.handleCreateUser)
	handle(p("GET", "/users"), s.handleListUsers)
	handle(p("GET", "/users/me"), s.handleMe)
	handle(p("POST", "/users/{id}/tokens"), s.handleCreateToken)

	handle(p("POST", "/organizations"), s.handleCreateOrg)
	handle(p("GET", "/organizations"), s.handleListOrgs)
	handle(p("GET", "/organizations/{id}"), s.handleGetOrg)
	handle(p("DELETE", "/organizations/{id}"), s.handleDeleteOrg)
	handle(p("GET", "/organizations/{id}/members"), s.handleListMembers)
	handle(p("DELETE", "/organizations/{id}/members/{user_id}"), s.handleRemoveMember)
	handle(p("GET", "/organizations/{id}/devices"), s.handleOrgDevices)
	handle(p("GET", "/organizations/{id}/events"), s.handleOrgEvents)
	handle(p("PUT", "/organizations/{id}/relays"), s.handleSetOrgRelays)
	handle(p("GET", "/organizations/{id}/relays"), s.handleGetOrgRelays)
	handle(p("DELETE", "/organizations/{id}/relays"), s.handleDeleteOrgRelays)

	handle(p("POST", "/invitations"), s.handleCreateInvitation)
	handle(p("GET", "/invitations"), s.handleListInvitations)
	handle(p("GET", "/invitations/{id}"), s.handleGetInvitation)
	handle(p("POST", "/invitations/{id}/accept"), s.handleAcceptInvitation)
	handle(p("POST", "/invitations/{id}/decline"), s.handleDeclineInvitation)
	handle(p("DELETE", "/invitations/{id}"), s.handleRevokeInvitation)

	handle(p("POST", "/reg-keys"), s.handleCreateRegKey)
	handle(p("GET", "/reg-keys"), s.handleListRegKeys)
	handle(p("GET", "/reg-keys/{id}"), s.handleGetRegKey)
	handle(p("DELETE", "/reg-keys/{id}"), s.handleDeleteRegKey)

	handle(p("POST", "/devices"), s.handleRegisterDevice)
	handle(p("GET", "/devices"), s.handleListDevices)
	handle(p("GET", "/devices/{id}"), s.handleGetDevice)
	handle(p("PATCH", "/devices/{id}"), s.handleUpdateDevice)
	handle(p("DELETE", "/devices/{id}"), s.handleDeleteDevice)
	handle(p("GET", "/devices/{id}/events"), s.handleDeviceEvents)
	handle(p("POST", "/devices/{id}/signal"), s.handleSignal)
	handle(p("GET", "/devices/{id}/relay"), s.handleDeviceRelay)

	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.Health{Status: "ok"})
	})
	mux.HandleFunc("GET /readyz", s.handleReady)
	s.mux = mux
}

// ServeHTTP serves the whole API, /healthz and /readyz.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
			if !sw.wroteHeader {
				s.writeError(sw, r, fmt.Errorf("panic: %v", v))
			}
		}
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", sw.statusCode(), "duration", time.Since(start))
	}()
	if _, pattern := s.mux.Handler(r); pattern == "" {
		// No route: let the mux decide between 404, 405 and a path-cleaning redirect, and
		// give 404/405 the API's error body.
		s.mux.ServeHTTP(&muxErrorWriter{statusWriter: sw, s: s, r: r}, r)
		return
	}
	s.mux.ServeHTTP(sw, r)
}

// authed wraps a route handler with authentication and error writing.
func (s *Server) authed(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.auth.Authenticate(r)
		if err == nil {
			err = h(w, r, p)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	})
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, body := statusOf(err)
	if status >= 500 && r.Context().Err() != nil {
		// The request's own context ended (the client disconnected): the failure is its
		// consequence — context.Canceled, or the store's interrupted query — not ours.
		s.log.Debug("client went away", "method", r.Method, "path", r.URL.Path, "err", err)
		status, body = statusOf(fmt.Errorf("%w: %w", errClientGone, err))
	}
	switch {
	case status == statusClientClosedRequest:
	case status >= 500:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	case status == http.StatusUnauthorized:
		s.log.Warn("unauthorized request", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
	default:
		s.log.Debug("request rejected", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="nexodus"`)
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(api.Error{Code: api.CodeInternal, Message: "cannot encode response"})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	err := s.store.Tx(ctx, func(tx store.Tx) error {
		_, err := tx.LatestRevision(ctx)
		return err
	})
	if err != nil {
		s.log.Warn("readiness check failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, api.Error{Code: api.CodeUnavailable, Message: "store not answering"})
		return
	}
	writeJSON(w, http.StatusOK, api.Health{Status: "ok"})
}

// statusWriter records the status of a response. Unwrap lets http.ResponseController reach the
// connection for flushing and write deadlines.
type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status = code
		w.wroteHeader = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher for callers that type-assert.
func (w *statusWriter) Flush() {
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) statusCode() int {
	if !w.wroteHeader {
		return http.StatusOK
	}
	return w.status
}

// muxErrorWriter replaces the mux's plain-text 404 and 405 responses with API error bodies.
type muxErrorWriter struct {
	*statusWriter
	s         *Server
	r         *http.Request
	swallowed bool
}

func (w *muxErrorWriter) WriteHeader(code int) {
	if w.swallowed || w.wroteHeader {
		return
	}
	switch code {
	case http.StatusNotFound:
		w.swallowed = true
		w.Header().Del("X-Content-Type-Options")
		w.s.writeError(w.statusWriter, w.r, errorf(ErrNotFound, "no such route"))
	case http.StatusMethodNotAllowed:
		w.swallowed = true
		w.s.writeError(w.statusWriter, w.r, errorf(ErrMethodNotAllowed, "method %s not allowed here", w.r.Method))
	default:
		w.statusWriter.WriteHeader(code)
	}
}

func (w *muxErrorWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader && !w.swallowed {
		w.WriteHeader(http.StatusOK)
	}
	if w.swallowed {
		return len(b), nil
	}
	return w.statusWriter.Write(b)
}

var _ io.Writer = (*muxErrorWriter)(nil)
