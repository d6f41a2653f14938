// Command coordinator runs the reference Nexodus coordinator on a SQLite database, or on a
// PostgreSQL database that several replicas share.
//
//	go run ./examples/coordinator -listen 127.0.0.1:8080 -db nexodus.db
//	go run ./examples/coordinator -listen :8080 -db postgres://nexodus@db.internal/nexodus -seal-key "$KEY"
//
// -db (default $NEXODUS_DB, else nexodus.db) is a SQLite file or a postgres:// URL.
//
// The admin token comes from -admin-token or NEXODUS_ADMIN_TOKEN; without either, the
// coordinator uses the token in -admin-token-file (mode 0600; by default DB.admin-token beside
// a SQLite database), generating it on the first start, and logs that file's path.
//
// GET /metrics serves Prometheus metrics (requests, event streams, fan-out, store transactions,
// devices online); with -metrics-token (or NEXODUS_METRICS_TOKEN) only to that bearer token.
//
// Devices learn their STUN and TURN servers from -stun-servers and -turn-servers, with TURN
// credentials minted from -relay-secret (or NEXODUS_RELAY_SECRET), the secret the relays share.
//
// Organizations may name their own relays (nexctl relays set); the secrets they give are sealed
// in the database with -seal-key (or NEXODUS_SEAL_KEY, or the file -seal-key-file): 32 random
// bytes in standard base64, e.g. from "head -c 32 /dev/urandom | base64". Without one, a SQLite
// coordinator makes DB.seal-key beside its database on the first start; a PostgreSQL one
// refuses to start, since every replica must have the same key.
//
// A SQLite database file is created (and its schema migrated) if missing; a PostgreSQL
// database must exist, and its schema is migrated. SIGINT or SIGTERM shuts
// the server down gracefully.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/nexodus-sdk/nexodus/coordinator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "coordinator:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends. Logs and flag errors go to stderr.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	flags := flag.NewFlagSet("coordinator", flag.ContinueOnError)
	flags.SetOutput(stderr)
	listen := flags.String("listen", "127.0.0.1:8080", "address to listen on")
	dbPath := flags.String("db", "", "SQLite database file (created if missing) or postgres:// URL (default $NEXODUS_DB, else "+defaultDB+")")
	adminTokenFile := flags.String("admin-token-file", "", "file keeping the admin token, generated if missing (default DB.admin-token beside a SQLite database)")
	sealKeyFile := flags.String("seal-key-file", "", "file keeping the seal key in base64 (default DB.seal-key beside a SQLite database, generated if missing)")
	adminToken := flags.String("admin-token", "", "admin bearer token (default $NEXODUS_ADMIN_TOKEN, else the one in DB.admin-token, generated if missing)")
	metricsToken := flags.String("metrics-token", "", "bearer token GET /metrics (Prometheus) asks for (default $NEXODUS_METRICS_TOKEN; empty: /metrics is open)")
	pool := flags.String("ipv4-pool", "100.64.0.0/10", "IPv4 pool organizations get their blocks from")
	retention := flags.Duration("event-retention", 24*time.Hour, "how long events are kept for stream resumption")
	logMaxBytes := flags.Int64("event-log-max-bytes", coordinator.DefaultEventLogMaxBytes, "most bytes of event data each organization's log keeps (its oldest events beyond go; a stream resuming from before them gets a sync)")
	debug := flags.Bool("debug", false, "log every request")
	stunServers := flags.String("stun-servers", "", "comma-separated host:port STUN servers advertised to devices (e.g. both UDP ports of a relay)")
	turnServers := flags.String("turn-servers", "", "comma-separated TURN URLs advertised to devices, e.g. turn:198.51.100.10:3478?transport=udp")
	relaySecret := flags.String("relay-secret", "", "secret shared with the relays (default $NEXODUS_RELAY_SECRET)")
	relayTTL := flags.Duration("relay-credential-ttl", 12*time.Hour, "how long minted TURN credentials are valid")
	sealKeyB64 := flags.String("seal-key", "", "32 bytes in base64 sealing organizations' relay secrets in the database (default $NEXODUS_SEAL_KEY)")
	trustedProxies := flags.String("trusted-proxies", "", "comma-separated CIDRs of reverse proxies whose X-Forwarded-For names the client (default: none, X-Forwarded-For is ignored)")
	limits := limitFlags(flags)
	web, tlsf := webFlagSet(flags), tlsFlagSet(flags)
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flags.Args())
	}

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	tokenFrom := "-admin-token"
	if *adminToken == "" {
		*adminToken, tokenFrom = os.Getenv("NEXODUS_ADMIN_TOKEN"), "NEXODUS_ADMIN_TOKEN"
	}
	if *adminToken != "" && utf8.RuneCountInString(*adminToken) < coordinator.MinAdminTokenLength {
		return fmt.Errorf("the admin token from %s has fewer than %d characters: use a long random one, e.g. $(head -c 24 /dev/urandom | base64)", tokenFrom, coordinator.MinAdminTokenLength)
	}
	if *dbPath == "" {
		*dbPath = os.Getenv("NEXODUS_DB")
	}
	if *dbPath == "" {
		*dbPath = defaultDB
	}
	if *adminToken == "" && *adminTokenFile == "" {
		if isPostgres(*dbPath) {
			return errors.New("with a PostgreSQL database, give the admin token with -admin-token, NEXODUS_ADMIN_TOKEN or -admin-token-file (a URL has no directory to keep it in)")
		}
		*adminTokenFile = *dbPath + adminTokenSuffix
	}
	if *adminToken == "" {
		path := *adminTokenFile
		tok, created, err := loadOrCreateAdminToken(path)
		if err != nil {
			return err
		}
		// The path, never the token: logs are read by more people than the token is for.
		logger.Info("admin token file", "path", path, "created", created)
		*adminToken = tok
	}
	if *relaySecret == "" {
		*relaySecret = os.Getenv("NEXODUS_RELAY_SECRET")
	}
	if *metricsToken == "" {
		*metricsToken = os.Getenv("NEXODUS_METRICS_TOKEN")
	}
	if *turnServers != "" && *relaySecret == "" {
		return errors.New("-turn-servers needs a relay secret: pass -relay-secret or set NEXODUS_RELAY_SECRET")
	}
	if *sealKeyB64 == "" {
		*sealKeyB64 = os.Getenv("NEXODUS_SEAL_KEY")
	}
	sealKey, err := resolveSealKey(*sealKeyB64, *sealKeyFile, *dbPath, logger)
	if err != nil {
		return err
	}
	prefix, err := netip.ParsePrefix(*pool)
	if err != nil {
		return fmt.Errorf("-ipv4-pool: %w", err)
	}
	var proxies []netip.Prefix
	for _, s := range splitList(*trustedProxies) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("-trusted-proxies: %w", err)
		}
		proxies = append(proxies, p)
	}

	tlsConfig, err := tlsf.config(*listen)
	if err != nil {
		return err
	}
	console, err := web.console(os.Getenv, firstOf(splitList(*tlsf.acmeHosts)))
	if err != nil {
		return err
	}

	st, err := openStore(ctx, *dbPath, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	srv, err := coordinator.New(ctx, coordinator.Config{
		Store: st, AdminToken: *adminToken, MetricsToken: *metricsToken, Logger: logger, IPv4Pool: prefix,
		EventRetention: *retention, EventLogMaxBytes: *logMaxBytes,
		STUNServers: splitList(*stunServers), TURNServers: splitList(*turnServers),
		RelaySecret: []byte(*relaySecret), RelayCredentialTTL: *relayTTL, SealKey: sealKey,
		RateLimits: *limits, TrustedProxies: proxies, Console: console,
	})
	if err != nil {
		return err
	}
	defer srv.Close()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	var handler http.Handler = srv
	if tlsConfig != nil {
		ln, handler = tls.NewListener(ln, tlsConfig), hsts(srv)
	}
	stopACME, err := tlsf.serveACMEHTTP(logger)
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer stopACME()
	hs := newHTTPServer(handler, logger)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	logger.Info("coordinator listening", "addr", ln.Addr().String(), "db", dbForLogs(*dbPath), "tls", tlsConfig != nil, "console", console != nil)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	// End event streams first so that Shutdown does not wait for them.
	_ = srv.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newHTTPServer serves h with timeouts against slow or idle clients that leave event streams
// alone: ReadTimeout bounds reading a request (headers and body, at most
// api.MaxRequestBody) and net/http lifts it once a bodyless request such as a stream is read.
// No WriteTimeout: event streams are long-lived, and the coordinator bounds each write.
func newHTTPServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// adminTokenSuffix names the admin token file beside the database.
const adminTokenSuffix = ".admin-token"

// loadOrCreateAdminToken returns the admin token kept in path, first creating the file (mode
// 0600) with a fresh random token if there is none, so that a coordinator started without
// flags has an admin credential only the database's owner can read, and keeps it across
// restarts. created reports whether the file was made now.
func loadOrCreateAdminToken(path string) (token string, created bool, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", false, fmt.Errorf("admin token: %w", err)
	}
	fresh := hex.EncodeToString(b)
	// O_EXCL: of two coordinators starting on one new database, one writes, the other reads.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		_, werr := f.WriteString(fresh + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			_ = os.Remove(path) // a half-written token would lock the admin out
			return "", false, fmt.Errorf("admin token: write %s: %w", path, werr)
		}
		return fresh, true, nil
	case !errors.Is(err, fs.ErrExist):
		return "", false, fmt.Errorf("admin token: create %s: %w", path, err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return "", false, fmt.Errorf("admin token: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return "", false, fmt.Errorf("admin token: %s is readable by others (mode %v): chmod 600 it", path, info.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", false, fmt.Errorf("admin token: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if utf8.RuneCountInString(tok) < coordinator.MinAdminTokenLength {
		return "", false, fmt.Errorf("admin token: %s holds no token of at least %d characters", path, coordinator.MinAdminTokenLength)
	}
	return tok, false, nil
}

// limitFlags defines a flag per rate limit ("RATE/UNIT,BURST" or "off") and one for the
// number of buckets kept, all defaulting to coordinator.DefaultRateLimits.
func limitFlags(flags *flag.FlagSet) *coordinator.RateLimits {
	rl := coordinator.DefaultRateLimits()
	for _, f := range []struct {
		name string
		l    *coordinator.Limit
		what string
	}{
		{"limit-requests", &rl.Requests, "authenticated requests per user, device or registration key"},
		{"limit-signals", &rl.Signals, "signals per device"},
		{"limit-signal-bytes", &rl.SignalBytes, "signal payload bytes per device"},
		{"limit-device-updates", &rl.DeviceUpdates, "updates (PATCH) per device"},
		{"limit-moves", &rl.Moves, "organization moves per device"},
		{"limit-sources", &rl.Sources, "failed authentications and requests to no route per source address"},
	} {
		flags.TextVar(f.l, f.name, *f.l, f.what+" (RATE/UNIT,BURST with UNIT s, m or h; off: no limit)")
	}
	flags.IntVar(&rl.MaxKeys, "limit-keys", rl.MaxKeys, "buckets kept per limit; beyond it new principals or addresses share one")
	return &rl
}

// splitList splits a comma-separated flag value, dropping empty entries.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// firstOf is the first of ss, "" when there is none.
func firstOf(ss []string) string {
	if len(ss) == 0 {
		return ""
	}
	return ss[0]
}
