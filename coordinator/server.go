package coordinator

// The Server's life: New loads what it keeps in memory and starts the background work, Close
// stops it and ends the event streams.

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// Server is a coordinator. It is an http.Handler serving the whole API.
type Server struct {
	cfg       Config
	store     store.Store
	log       *slog.Logger
	mux       *http.ServeMux
	auth      Authenticator
	adminHash []byte
	hub       *hub
	replica   string    // names this process in the store's presence rows (presence.go)
	started   time.Time // when New ran: ephemeral devices get their grace period from it (sweep.go)
	limits    *limiters // rate limits (ratelimit.go)
	sealer    *sealer   // seals organization relay secrets; nil without Config.SealKey
	web       *web      // the console, sign-in and device login; nil without Config.Console

	// peers holds organizations' device lists, serialized once (peerlist.go).
	peers *peerCache
	// metrics are this Server's Prometheus collectors (metrics.go); metricsHash is the hash of
	// Config.MetricsToken, nil when /metrics is open.
	metrics     *metrics
	metricsHash []byte

	// scrubPending: secrets were re-sealed at start but Store.Compact has not yet succeeded in
	// scrubbing their plaintext from the database files (seal.go); the sweeper retries.
	scrubPending atomic.Bool

	bgCancel context.CancelFunc
	bgWG     sync.WaitGroup

	closer  closeOnce
	closing chan struct{} // closed by Close: event streams end
	streams sync.WaitGroup
}

// New validates cfg, loads what the coordinator keeps in memory and starts its background
// goroutines. Call Close to stop them.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	sealer, err := newSealer(cfg.SealKey)
	if err != nil {
		return nil, err
	}
	cfg.SealKey = nil // the derived AEAD is all the server keeps
	s := &Server{sealer: sealer, cfg: cfg, store: cfg.Store, log: cfg.Logger, closing: make(chan struct{}), replica: newReplicaID(), peers: newPeerCache()}
	if cfg.AdminToken != "" {
		h := sha256.Sum256([]byte(cfg.AdminToken))
		s.adminHash = h[:]
	}
	if cfg.MetricsToken != "" {
		h := sha256.Sum256([]byte(cfg.MetricsToken))
		s.metricsHash = h[:]
	}
	s.metrics = newMetrics(func() int { return s.hub.onlineCount() })
	s.store = serverStore{Store: cfg.Store, m: s.metrics} // timed; outages answer 503 (storeuse.go)
	s.auth = tokenAuthenticator{s}
	s.limits = newLimiters(cfg.RateLimits)
	if err := s.resealSecrets(ctx); err != nil {
		return nil, err
	}
	s.hub = newHub(s.store)
	s.started = s.now()
	if cfg.Console != nil {
		if s.web, err = newWeb(s, cfg.Console); err != nil {
			return nil, err
		}
	}
	s.mux = s.routes()

	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.bgCancel = cancel
	s.bgWG.Go(func() { s.sweeper(bg) }) // also prunes expired sessions, sign-ins and device logins
	return s, nil
}

// Close stops the background goroutines and ends open event streams, waiting for them. It does
// not close the Store. Calls after the first return an error wrapping net.ErrClosed.
func (s *Server) Close() error {
	if err := s.closer.close("coordinator"); err != nil {
		return err
	}
	close(s.closing)
	s.bgCancel()
	s.bgWG.Wait()
	err := s.hub.Close()
	s.streams.Wait()
	return err
}

// openStream counts an event stream, so that Close waits for it; it fails once Close has begun.
// The caller calls s.streams.Done when the stream ends.
func (s *Server) openStream() error {
	if !s.closer.whileOpen(func() { s.streams.Add(1) }) {
		return errorf(ErrUnavailable, "coordinator is shutting down")
	}
	return nil
}

// now is the coordinator's clock in UTC.
func (s *Server) now() time.Time { return s.cfg.Now().UTC() }

// inTx runs fn in one transaction of st and returns its value (that of the last attempt, also
// with an error).
func inTx[T any](ctx context.Context, st store.Store, fn func(tx store.Tx) (T, error)) (T, error) {
	var v T
	err := st.Tx(ctx, func(tx store.Tx) error {
		var err error
		v, err = fn(tx)
		return err
	})
	return v, err
}
